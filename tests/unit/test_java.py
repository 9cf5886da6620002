from plantlake.services.java import parse_major


def test_parse_java_versions():
    assert parse_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse_major('openjdk version "21" 2023-09-19') == 21
    assert parse_major('java version "1.8.0_392"') == 8
    assert parse_major("garbage") is None
