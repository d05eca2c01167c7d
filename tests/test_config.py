"""Configuration: the minimal file runs; every bad file names the file, the key and the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from station.config import ConnectorKind, LinkKind, load_config, parse_config
from station.errors import ConfigError

MINIMAL = textwrap.dedent(
    """
    [station]
    id = "CS-001"
    [csms]
    url = "ws://127.0.0.1:9000/ocpp"   # the station id is appended as the last path segment
    [storage]
    database = "station.db"
    [[evse]]
    id = 1
    connector = "chademo"              # or "ccs"
    """
)

REPO = Path(__file__).resolve().parents[1]


def test_minimal_file_has_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.station.id == "CS-001"
    assert config.csms.security_profile == 0
    assert config.csms.subprotocols == ("ocpp2.1", "ocpp2.0.1")
    assert config.storage.database == tmp_path / "station.db"  # relative to the file
    assert config.storage.message_log_path == tmp_path / "station.ocpp.jsonl"
    (evse,) = config.evse
    assert evse.connector is ConnectorKind.CHADEMO
    assert (evse.max_charge_power_w, evse.max_discharge_power_w) == (20_000.0, 10_000.0)
    assert evse.vehicle is LinkKind.SIMULATED
    assert config.inverter.link is LinkKind.NONE  # no inverter unless configured
    assert evse.chademo is None  # the protocol-less simulated vehicle unless configured
    assert config.any_simulated


def test_the_shipped_example_is_valid_and_complete() -> None:
    config = load_config(REPO / "deploy" / "station.example.toml")
    assert [e.id for e in config.evse] == [1, 2]
    text = (REPO / "deploy" / "station.example.toml").read_text()
    # Every key of every section appears in the example (commented or not).
    from dataclasses import fields

    from station.config import (
        ChademoConfig,
        CsmsConfig,
        EvseConfig,
        GpioConfig,
        GridConfig,
        GridTripConfig,
        InverterConfig,
        SimConfig,
        StationConfig,
        StorageConfig,
        TransactionsConfig,
    )

    sections = (
        StationConfig,
        CsmsConfig,
        StorageConfig,
        EvseConfig,
        ChademoConfig,
        GpioConfig,
        InverterConfig,
        GridConfig,
        GridTripConfig,
        SimConfig,
        TransactionsConfig,
    )
    for section in sections:
        for f in fields(section):
            assert f"{f.name} =" in text, f"{section.__name__}.{f.name} missing from the example"


def test_every_key_is_documented_in_the_readme() -> None:
    from dataclasses import fields

    from station.config import (
        ChademoConfig,
        CsmsConfig,
        EvseConfig,
        GpioConfig,
        GridConfig,
        GridTripConfig,
        InverterConfig,
        SimConfig,
        StationConfig,
        StorageConfig,
        TransactionsConfig,
    )

    readme = (REPO / "README.md").read_text()
    for section in (
        StationConfig,
        CsmsConfig,
        StorageConfig,
        EvseConfig,
        ChademoConfig,
        GpioConfig,
        InverterConfig,
        GridConfig,
        GridTripConfig,
        SimConfig,
        TransactionsConfig,
    ):
        for f in fields(section):
            assert f"`{f.name}`" in readme, f"{section.__name__}.{f.name} not in README.md"


_GPIO = "lock = 5\ncontactors = 6\ninsulation_test = 13\ninsulation_ok = 19\nestop = 26\n"
_DC_MAP = REPO / "deploy" / "inverter-maps" / "example-dc-converter.toml"


def _hw(
    gpio: str = "",
    drop: str = "",
    inverter: str = f"link = 'hardware'\nregister_map = '{_DC_MAP}'",
    second: bool = False,
) -> str:
    """A station with a hardware CHAdeMO EVSE 1 (and maybe a second one), changed as given."""
    evse = (
        "[[evse]]\nid = {n}\nconnector = 'chademo'\nvehicle = 'hardware'\n"
        "[evse.chademo]\ncan_interface = 'virtual'\n[evse.chademo.gpio]\n"
        + _GPIO.replace(drop, "")
        + gpio
        + "\n"
    )
    text = MINIMAL.split("[[evse]]")[0] + evse.format(n=1)
    if second:
        text += evse.format(n=2).replace("= 5\n", "= 7\n")
    if inverter:
        text += "[inverter]\n" + inverter + "\n"
    return text


def test_a_hardware_chademo_evse_parses(tmp_path: Path) -> None:
    config = parse_config(_hw(gpio="root = 'gpio'"), source="t.toml", base_dir=tmp_path)
    (evse,) = config.evse
    assert evse.vehicle is LinkKind.HARDWARE
    assert evse.chademo is not None and evse.chademo.gpio is not None
    gpio = evse.chademo.gpio
    assert (gpio.lock, gpio.contactors, gpio.insulation_test, gpio.insulation_ok, gpio.estop) == (
        5,
        6,
        13,
        19,
        26,
    )
    assert gpio.root == tmp_path / "gpio" and gpio.estop_active_low is True
    assert not config.any_simulated
    default = parse_config(_hw(), source="t.toml").evse[0].chademo
    assert default is not None and default.gpio is not None
    assert default.gpio.root == Path("/sys/class/gpio")


def test_a_map_without_dc_registers_is_refused(tmp_path: Path) -> None:
    ac_only = tmp_path / "ac.toml"
    text = "[[register]]".join(
        part for part in _DC_MAP.read_text().split("[[register]]") if 'name = "dc_' not in part
    )
    ac_only.write_text(text)
    with pytest.raises(ConfigError) as caught:
        parse_config(
            _hw(inverter=f"link = 'hardware'\nregister_map = '{ac_only}'"), source="bad.toml"
        )
    message = str(caught.value)
    assert message.startswith("bad.toml: inverter.register_map: ac.toml has no dc_voltage_v or ")
    assert "\n" not in message


def _with(
    extra_station: str = "", extra_csms: str = "", extra_evse: str = "", tail: str = ""
) -> str:
    return textwrap.dedent(
        f"""
        [station]
        id = "CS-001"
        {extra_station}
        [csms]
        url = "ws://127.0.0.1:9000/ocpp"
        {extra_csms}
        [storage]
        database = "station.db"
        [[evse]]
        id = 1
        connector = "ccs"
        {extra_evse}
        {tail}
        """
    )


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[csms]\nurl='ws://x/'", "station", "missing required key"),
        (MINIMAL.replace('id = "CS-001"', ""), "station.id", "missing required key"),
        (MINIMAL.replace('id = "CS-001"', "id = 7"), "station.id", "must be a string"),
        (_with(extra_station="colour = 'red'"), "station.colour", "unknown key"),
        (_with(tail="[extra]\na = 1"), "extra", "unknown key"),
        (
            _with(tail="[transactions]\nresumption_timeout_s = -1"),
            "transactions.resumption_timeout_s",
            "between 0 and 86400",
        ),
        (_with(extra_csms="security_profile = 4"), "csms.security_profile", "must be 0, 1, 2 or 3"),
        (_with(extra_csms="security_profile = '1'"), "csms.security_profile", "must be an integer"),
        (_with(extra_csms="security_profile = 1"), "csms.basic_auth_password", "is required"),
        (
            _with(extra_csms="security_profile = 1\nbasic_auth_password = 'short'"),
            "csms.basic_auth_password",
            "16 to 40",
        ),
        (_with(extra_csms="security_profile = 2"), "csms.url", "needs wss://"),
        (_with(extra_csms="subprotocols = ['ocpp1.6']"), "csms.subprotocols[0]", "must be one of"),
        (_with(extra_csms="subprotocols = []"), "csms.subprotocols", "at least one"),
        (_with(extra_csms="message_timeout_s = 0"), "csms.message_timeout_s", "between 1 and"),
        (_with(extra_csms="heartbeat_interval_s = true"), "csms.heartbeat_interval_s", "integer"),
        (MINIMAL.replace("ws://127.0.0.1:9000/ocpp", "http://x/"), "csms.url", "ws:// or wss://"),
        (_with(extra_evse="connector_id = 0"), "evse[0].connector_id", "1 or more"),
        (_with(extra_evse="max_charge_power_w = -5"), "evse[0].max_charge_power_w", "greater"),
        (_with(extra_evse="max_current_a = 'lots'"), "evse[0].max_current_a", "must be a number"),
        (_with(extra_evse="vehicle = 'hardware'"), "evse[0].vehicle", "[evse.chademo] table"),
        (
            _with(extra_evse="vehicle = 'hardware'", tail="[evse.chademo]").replace(
                "ccs", "chademo"
            ),
            "evse[0].chademo.gpio",
            'is required with vehicle = "hardware"',
        ),
        (_hw(drop="lock = 5", gpio="lock = -1"), "evse[0].chademo.gpio.lock", "0 or more"),
        (
            _hw(drop="estop = 26", gpio="estop = 5"),
            "evse[0].chademo.gpio.estop",
            "GPIO 5 is already used by lock",
        ),
        (
            _hw(drop="lock = 5", gpio="lock = '5'"),
            "evse[0].chademo.gpio.lock",
            "must be an integer",
        ),
        (_hw(gpio="estop_active_low = 1"), "evse[0].chademo.gpio.estop_active_low", "true or"),
        (_hw(gpio="colour = 1"), "evse[0].chademo.gpio.colour", "unknown key"),
        (_hw(drop="estop = 26"), "evse[0].chademo.gpio.estop", "missing required key"),
        (_hw(inverter=""), "evse[0].vehicle", "needs an [inverter] link"),
        (_hw(inverter="link = 'hardware'"), "inverter.register_map", "SunSpec model 714"),
        (
            _hw(inverter="link = 'hardware'\nregister_map = 'no-such-map.toml'"),
            "inverter.register_map",
            "no-such-map.toml",
        ),
        (_hw(second=True), "evse[1].vehicle", 'only one EVSE may have vehicle = "hardware"'),
        (
            MINIMAL.replace('connector = "chademo"', 'connector = "type2"'),
            "evse[0].connector",
            "must be one of chademo, ccs",
        ),
        (MINIMAL + "[[evse]]\nid = 1\nconnector = 'ccs'\n", "evse[1].id", "used twice"),
        (MINIMAL + "[[evse]]\nid = 3\nconnector = 'ccs'\n", "evse", "without gaps"),
        (MINIMAL.replace('[[evse]]\nid = 1\nconnector = "chademo"', ""), "evse", "missing"),
        (_with(tail="source = 'x'"), "evse[0].source", "unknown key"),
        ('source = "x"\n' + MINIMAL, "source", "unknown key"),
    ],
)
def test_bad_config_names_file_key_and_problem(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="bad.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"bad.toml: {key}: "), message
    assert problem in message


def test_invalid_toml_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[station\nid=", source="broken.toml")
    assert str(caught.value).startswith("broken.toml: not valid TOML")
    assert "\n" not in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_certificate_files_must_exist(tmp_path: Path) -> None:
    text = _with(
        extra_csms="security_profile = 3\nca_file = 'ca.pem'\n"
        "client_cert_file = 'c.pem'\nclient_key_file = 'c.key'"
    ).replace("ws://", "wss://")
    with pytest.raises(ConfigError, match=r"csms\.ca_file: no such file"):
        parse_config(text, source="t.toml", base_dir=tmp_path)
