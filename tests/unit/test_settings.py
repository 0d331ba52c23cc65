import pytest

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for


def test_environment_overrides_defaults_and_arguments_override_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSARJOBS_SERVICE_URL", "pulsar://broker:6650")
    monkeypatch.setenv("PULSARJOBS_NAMESPACE", "jobs")
    settings = Settings.from_env(namespace="billing")
    assert (settings.service_url, settings.namespace) == ("pulsar://broker:6650", "billing")
    assert settings.admin_url == "http://127.0.0.1:8080"


def test_environment_values_take_the_type_of_their_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSARJOBS_MAX_MESSAGE_SIZE", "1024")
    monkeypatch.setenv("PULSARJOBS_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("PULSARJOBS_TOKEN", "secret")
    settings = Settings.from_env()
    assert settings.max_message_size == 1024
    assert settings.heartbeat_interval == 0.5
    assert settings.token == "secret"


def test_an_empty_variable_leaves_an_optional_setting_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSARJOBS_TOKEN", "")
    assert Settings.from_env().token is None


def test_text_overrides_are_converted_like_variables() -> None:
    assert Settings.from_env(heartbeat_interval="2").heartbeat_interval == 2.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PULSARJOBS_MAX_MESSAGE_SIZE", "5MB", "PULSARJOBS_MAX_MESSAGE_SIZE must be an integer"),
        ("PULSARJOBS_MAX_MESSAGE_SIZE", "1.5", "must be an integer, got '1.5'"),
        ("PULSARJOBS_HEARTBEAT_INTERVAL", "soon", "PULSARJOBS_HEARTBEAT_INTERVAL must be a number"),
    ],
)
def test_a_bad_variable_names_itself_and_the_type_it_needs(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("service_url", "http://x:6650", "pulsar://"),
        ("admin_url", "pulsar://x", "http://"),
        ("namespace", "a/b", "without '/'"),
    ],
)
def test_bad_settings_say_what_is_wrong(field: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_each_subscription_has_its_own_retry_and_dead_letter_topics() -> None:
    topics = topics_for(Settings(subscription="billing"), "emails")
    assert topics.jobs == "persistent://public/pulsarjobs/emails"
    assert topics.retry == "persistent://public/pulsarjobs/emails-billing-RETRY"
    assert topics.dead == "persistent://public/pulsarjobs/emails-billing-DLQ"
