"""Credentials never reach results.json, the model card or the wandb config."""

SECRET_MARKERS = ("token", "api_key", "password", "secret")


def scrub_secrets(values: dict) -> dict:
    """Drop every entry whose name says it holds a credential (a `--hub_token` given on the command line, ...)."""
    return {k: v for k, v in values.items() if not any(marker in k.lower() for marker in SECRET_MARKERS)}
