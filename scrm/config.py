"""Settings, read from the environment with the ``SCRM_`` prefix (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCRM_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'scrm.db'}"
    # Signs sessions and derives the key that encrypts channel secrets at rest.
    secret_key: SecretStr = SecretStr("dev-insecure-change-me")
    base_url: str = "http://127.0.0.1:8000"
    # Public data sets for training and benchmarks; never copied into the repository.
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    # Trained models and the model registry.
    model_dir: Path = PROJECT_ROOT / "var" / "models"
    # Outbound API bases, so tests and the demo can point them at fake servers on 127.0.0.1.
    wechat_api_base: str = "https://api.weixin.qq.com"
    weibo_api_base: str = "https://api.weibo.com"
    # Seconds a WeChat / Weibo API call may take before it counts as timed out (its outcome is
    # then unknown: the outbox retries, and on Weibo first looks whether the reply went out).
    channel_api_timeout: float = 10.0
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # Run the job worker inside the web server process (default on SQLite).
    inprocess_worker: bool | None = None
    worker_poll_interval: float = 0.2
    # A job whose worker stops renewing this lease (crash, SIGKILL) is claimable again after it.
    worker_lease_seconds: float = 60.0
    # Jobs whose effects are database writes only (inbound.process, sla.check) run up to this
    # many to one transaction, which takes no further job after `worker_tx_seconds`; 1 = one
    # transaction per job. Fewer commits, one bookkeeping UPDATE and shared lookups per batch.
    # 0 = by database: 50 jobs / 0.25 s on PostgreSQL; 20 / 0.1 s on SQLite, where the open
    # transaction holds the write lock that webhooks wait for.
    worker_tx_jobs: int = Field(default=0, ge=0)
    worker_tx_seconds: float = Field(default=0.0, ge=0.0)
    # How often each workspace's NLP model is retrained from agents' corrections (default daily).
    nlp_retrain_interval_seconds: float = 86400.0
    # Default send quota per channel account (token bucket shared by all workers; an account's
    # config `rate_limit_per_second` / `rate_limit_burst` overrides it; 0 = unlimited).
    outbound_rate_per_second: float = 20.0
    outbound_rate_burst: float = 40.0
    # Done jobs are deleted after this many days (periodic job `jobs.purge`).
    job_retention_days: float = 7.0
    log_level: str = "INFO"
    log_json: bool = False
    default_timezone: str = "Asia/Shanghai"
    webhook_max_body: int = 1024 * 1024
    webhook_tolerance_seconds: int = 300
    cookie_secure: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
