from __future__ import annotations

from stateline.data import hourly_temperatures, load_table


def test_hourly_temperatures_load_offline_as_two_streams() -> None:
    frame = hourly_temperatures()
    table = load_table(frame, time="time", features=["temp"], group="city")
    assert table.groups == ["San Francisco", "Seattle"]
    assert table.lengths == [8759, 8759]
    assert min(float(f.min()) for f in table.features) > 20
    assert max(float(f.max()) for f in table.features) < 110
