import pytest

from shared.errors import ConfigError
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "BROKER_URL",
        "PORT",
        "LOG_LEVEL",
        "CRON_TIMEZONE",
        "RUN_RETENTION_DAYS",
        "DEDUPE_WINDOW_HOURS",
        "CHRONOS_NAMESPACE",
        "WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_prd() -> None:
    s = load_settings()
    assert (s.port, s.log_level, s.cron_timezone) == (3000, "info", "UTC")
    assert (s.run_retention_days, s.dedupe_window_hours) == (180, 48)
    assert s.webhook_secret.get_secret_value() == ""
    assert s.broker_url == s.redis_url and s.broker_kind == "redis"


def test_amqp_broker_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@localhost:5672/")
    assert load_settings().broker_kind == "rabbitmq"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("CRON_TIMEZONE", "Mars/Base"),
        ("RUN_RETENTION_DAYS", "0"),
        ("DEDUPE_WINDOW_HOURS", "-1"),
        ("BROKER_URL", "kafka://x"),
        ("DATABASE_URL", "mysql://x"),
        ("CHRONOS_NAMESPACE", "Has Spaces"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
