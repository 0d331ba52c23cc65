import pytest

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings
from pulsarjobs.topics import topics_for


def test_environment_overrides_defaults_and_arguments_override_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSARJOBS_SERVICE_URL", "pulsar://broker:6650")
    monkeypatch.setenv("PULSARJOBS_NAMESPACE", "jobs")
    settings = Settings.from_env(namespace="billing")
    assert (settings.service_url, settings.namespace) == ("pulsar://broker:6650", "billing")
    assert settings.admin_url == "http://127.0.0.1:8080"


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


def test_each_consumer_group_has_its_own_retry_and_dead_letter_topics() -> None:
    topics = topics_for(Settings(subscription="billing"), "emails")
    assert topics.jobs == "persistent://public/pulsarjobs/emails"
    assert topics.retry == "persistent://public/pulsarjobs/emails-billing-RETRY"
    assert topics.dead == "persistent://public/pulsarjobs/emails-billing-DLQ"
