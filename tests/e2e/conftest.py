"""Shared fixtures for Sluice end-to-end tests; the helpers live in helpers/
(env, procs, messages, http1, http2, clients, tls, upstreams, metrics) and are
re-exported here, so tests import everything from conftest.

Every process is started on port 0 and reports its ports through a port file.
Processes are recorded by pid and always stopped by pid at teardown
(SIGTERM, then SIGKILL after 5 s).

Environment:
  SLUICE_BIN        directory holding `sluice` and `sluice-mock`
                    (default: <repo>/build/bin)
  SLUICE_SANITIZED  set when the binaries are an ASan/UBSan build; widens the
                    time windows of timing-sensitive assertions.
"""
from __future__ import annotations

import pytest

# The helpers assert too: have pytest explain their failures as it does here.
pytest.register_assert_rewrite("helpers")

# Re-exported (__all__): the tests import every helper from conftest.
from helpers.clients import BackgroundStream, Session, chat, request, stream_chat  # noqa: E402
from helpers.env import BIN_DIR, IO_TIMEOUT, PORT_FILE_TIMEOUT, REPO, SANITIZED, SLACK  # noqa: E402
from helpers.http1 import Raw, h1_connection, http_head, raw_chat, recv_some, tcp_connect  # noqa: E402
from helpers.http2 import H2Client, H2Error, _graceful_goaway_connection_class  # noqa: E402
from helpers.messages import (  # noqa: E402
    Event, Response, Stream, _parse_events, assert_error_body, assert_full_stream, chat_body)
from helpers.metrics import (  # noqa: E402
    Metrics, fetch_metrics, fetch_metrics_text, metric_delta, parse_metrics, wait_until)
from helpers.procs import (  # noqa: E402
    _ALL_PROCS, Gateway, Mock, Proc, gateway_config, gateway_target, start_gateway, start_mock, start_tls_gateway)
from helpers.tls import PROTOCOL_LABEL, PROTOCOLS, Target, TestPki, tls_listener  # noqa: E402
from helpers.upstreams import (  # noqa: E402
    RecordingUpstream, ScriptedUpstream, closed_port, established_to, sse_chunk, sse_response)

__all__ = [
    "BIN_DIR", "IO_TIMEOUT", "PORT_FILE_TIMEOUT", "REPO", "SANITIZED", "SLACK",
    "Gateway", "Mock", "Proc", "gateway_config", "gateway_target", "start_gateway", "start_mock", "start_tls_gateway",
    "Event", "Response", "Stream", "_parse_events", "assert_error_body", "assert_full_stream", "chat_body",
    "Raw", "h1_connection", "http_head", "raw_chat", "recv_some", "tcp_connect",
    "H2Client", "H2Error", "_graceful_goaway_connection_class",
    "BackgroundStream", "Session", "chat", "request", "stream_chat",
    "PROTOCOL_LABEL", "PROTOCOLS", "Target", "TestPki", "tls_listener",
    "RecordingUpstream", "ScriptedUpstream", "closed_port", "established_to", "sse_chunk", "sse_response",
    "Metrics", "fetch_metrics", "fetch_metrics_text", "metric_delta", "parse_metrics", "wait_until",
]


@pytest.fixture(scope="session", autouse=True)
def _reap_all_processes():
    yield
    for p in list(_ALL_PROCS):
        p.stop()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, request):
    return tmp_path_factory.mktemp(request.module.__name__.split(".")[-1])


@pytest.fixture(scope="module")
def mock(module_dir):
    m = start_mock(module_dir)
    yield m
    rc = m.proc.stop()
    assert rc == 0, f"sluice-mock exited with {rc}:\n{m.proc.output()}"


@pytest.fixture(scope="session")
def server_pki(tmp_path_factory) -> TestPki:
    """One test CA and gateway certificate per session."""
    return TestPki(tmp_path_factory.mktemp("server-pki"))
