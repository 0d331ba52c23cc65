import pulsarjobs


def test_every_public_name_is_importable_from_the_package() -> None:
    missing = [name for name in pulsarjobs.__all__ if not hasattr(pulsarjobs, name)]
    assert missing == []
    assert {"App", "Worker", "RetryPolicy", "current_job", "JobCall"} <= set(pulsarjobs.__all__)
