import pytest

from plantlake.core.errors import ContractError, SourceError
from plantlake.pipelines.jobs.cmms import CmmsRecord, parse_cmms_export, read_cmms_export
from plantlake.simulator.cmms_export import write_cmms_export
from plantlake.simulator.plant import build_plant, maintenance_log

HEADER = "asset,event,failure_mode,time_ms\n"
T = 1_767_225_600_000
PUMP = "plant1/line1/pump-02"


def _parse(body: str, header: str = HEADER):
    return parse_cmms_export(header + body, source="export.csv")


def test_a_good_export_parses_in_file_order_with_empty_failure_modes_as_null():
    events = _parse(
        f"{PUMP},failure,bearing_wear,{T}\n"
        f"{PUMP},repair,bearing_wear,{T + 4}\n"
        "\n"  # blank lines are not rows
        f" plant1/line1/press-01 , inspection , , {T + 9}\n"
    )
    assert events == (
        CmmsRecord(PUMP, "failure", "bearing_wear", T),
        CmmsRecord(PUMP, "repair", "bearing_wear", T + 4),
        CmmsRecord("plant1/line1/press-01", "inspection", None, T + 9),
    )


def test_the_columns_may_come_in_any_order_and_a_header_only_file_is_empty():
    assert _parse(f"{T},failure,{PUMP},\n", header="time_ms,event,asset,failure_mode\n") == (
        CmmsRecord(PUMP, "failure", None, T),
    )
    assert _parse("") == ()


def test_the_simulators_export_reads_back_as_its_maintenance_log(tmp_path):
    plant = build_plant(7, start_ms=T)
    until = T + 30 * 24 * 3_600_000
    path = tmp_path / "cmms_export.csv"
    assert write_cmms_export(plant, until, path) > 10
    events = read_cmms_export(path)
    assert events == tuple(
        CmmsRecord(e.asset, e.kind, e.failure_mode, e.time_ms)
        for e in maintenance_log(plant, until)
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f",failure,bearing_wear,{T}", "line 3: the asset is missing"),
        (f"{PUMP},fixed,bearing_wear,{T}", "line 3: event 'fixed' is not one of failure, repair, inspection"),
        (f"{PUMP},Failure,bearing_wear,{T}", "event 'Failure' is not one of"),
        (f"{PUMP},failure,bearing_wear,", "line 3: time_ms '' is not an integer"),
        (f"{PUMP},failure,bearing_wear,2026-01-01T00:00:00Z", "time_ms '2026-01-01T00:00:00Z' is not an integer"),
        (f"{PUMP},failure,bearing_wear,{T / 1000}", "is not an integer"),
        (f"{PUMP},failure,bearing_wear,{T // 1000}", f"time_ms {T // 1000} is not epoch milliseconds between 2000 and 2100"),
        (f"{PUMP},failure,{T}", "line 3: 3 fields, the header has 4"),
        (f"{PUMP},failure,bearing_wear,{T},extra", "line 3: 5 fields, the header has 4"),
    ],
)  # fmt: skip
def test_a_bad_row_refuses_the_whole_file_naming_the_file_and_line(row, reason):
    body = f"{PUMP},failure,bearing_wear,{T - 1}\n{row}\n{PUMP},repair,bearing_wear,{T + 5}\n"
    with pytest.raises(ContractError, match="export.csv: 1 bad row") as caught:
        _parse(body)
    assert caught.value.code == "contract"
    assert reason in str(caught.value)
    assert "nothing was loaded" in str(caught.value)


def test_every_bad_line_is_named_up_to_ten():
    body = "".join(f"{PUMP},broken,x,{T + i}\n" for i in range(12))
    with pytest.raises(ContractError, match="12 bad row") as caught:
        _parse(body)
    message = str(caught.value)
    assert "line 2:" in message and "line 11:" in message and "line 12:" not in message
    assert "and 2 more" in message


def test_a_repeated_row_counts_once_but_two_failure_modes_for_one_event_are_refused():
    row = f"{PUMP},failure,bearing_wear,{T}\n"
    assert _parse(row + row) == (CmmsRecord(PUMP, "failure", "bearing_wear", T),)
    with pytest.raises(ContractError, match="line 3: failure of .* has failure mode 'seal_leak', "
                                            "line 2 says 'bearing_wear'"):  # fmt: skip
        _parse(row + f"{PUMP},failure,seal_leak,{T}\n")


@pytest.mark.parametrize(
    "header", ["asset,event,time_ms\n", "asset,event,failure_mode,time_ms,site\n", "", "a,b,c,d\n"]
)
def test_a_wrong_header_refuses_the_file(header):
    with pytest.raises(ContractError, match="export.csv: the header is"):
        _parse(f"{PUMP},failure,bearing_wear,{T}\n" if header else "", header=header)


def test_a_spreadsheet_bom_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(HEADER + f"{PUMP},failure,bearing_wear,{T}\n", encoding="utf-8-sig")
    assert read_cmms_export(path) == (CmmsRecord(PUMP, "failure", "bearing_wear", T),)


def test_a_missing_export_is_a_source_error_naming_it(tmp_path):
    with pytest.raises(SourceError, match="nowhere.csv cannot be read"):
        read_cmms_export(tmp_path / "nowhere.csv")
