import time

from plantlake.core.clock import iso_ms, now_ms, utc_text


def test_iso_ms_is_utc_with_a_z_and_milliseconds_only_when_there_are_any():
    assert iso_ms(1_767_225_600_000) == "2026-01-01T00:00:00Z"
    assert iso_ms(1_767_225_600_250) == "2026-01-01T00:00:00.250Z"


def test_utc_text_reads_as_a_person_writes_a_time():
    assert utc_text(1_767_225_661_999) == "2026-01-01 00:01:01"


def test_now_ms_is_the_wall_clock_in_milliseconds():
    before = time.time() * 1000
    assert before - 1 <= now_ms() <= time.time() * 1000 + 1
