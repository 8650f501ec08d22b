"""Exports logs to weir with the OpenTelemetry Python SDK and its
OTLP/HTTP exporter (protobuf), and prints, a JSON object a line, each log
record exactly as the exporter was handed it, for the test to compare with
what weir wrote.

logs ENDPOINT [TOKEN]     log records, with trace context (an https endpoint
                          trusts the CA file WEIR_TEST_CA names)
traces ENDPOINT [TOKEN]   a parent span and a child with events, a link,
                          an error status and attributes
"""
import json
import os
import sys

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode


class Recording(OTLPLogExporter):
    """Prints what it exports, then exports it."""

    def export(self, batch):
        for readable in batch:
            record = readable.log_record
            print(json.dumps({
                "body": record.body,
                "severity_number": record.severity_number.value,
                "severity_text": record.severity_text,
                "attributes": dict(record.attributes or {}),
                "time_unix_nano": record.timestamp,
                "trace_id": format(record.trace_id, "032x"),
                "span_id": format(record.span_id, "016x"),
                "resource": dict(readable.resource.attributes),
                "scope": [readable.instrumentation_scope.name, readable.instrumentation_scope.version],
            }), flush=True)
        result = super().export(batch)
        assert result == LogRecordExportResult.SUCCESS, result
        return result


def logs(endpoint, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # A CA to trust for https endpoints (the test's own). requests prefers
    # these variables to what it is given, so they go.
    if os.environ.get("WEIR_TEST_CA"):
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        os.environ.pop("CURL_CA_BUNDLE", None)
    exporter = Recording(
        endpoint=endpoint, headers=headers, timeout=10, certificate_file=os.environ.get("WEIR_TEST_CA")
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "deployment": "test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("weir.test.client", "1.4.2")
    span = NonRecordingSpan(SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0xEEE19B7EC3C1B174,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    ))
    context = trace.set_span_in_context(span)
    cases = [
        (SeverityNumber.INFO, "INFO", "order placed", {"order.id": 42, "amount": 19.5, "express": True}),
        (SeverityNumber.WARN, "WARN", "stock low", {"sku": "A-17"}),
        (SeverityNumber.ERROR, "ERROR", "payment failed", {"retry": 3}),
    ]
    for i, (severity, text, body, attributes) in enumerate(cases):
        logger.emit(
            timestamp=1_700_000_000_000_000_000 + i * 1_000_001,
            context=context,
            severity_number=severity,
            severity_text=text,
            body=body,
            attributes=attributes,
        )
    provider.shutdown()


class RecordingSpans(OTLPSpanExporter):
    """Prints the spans it exports, then exports them."""

    def export(self, spans):
        for span in spans:
            print(json.dumps({
                "name": span.name,
                "trace_id": format(span.context.trace_id, "032x"),
                "span_id": format(span.context.span_id, "016x"),
                "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                "kind": span.kind.name.lower(),
                "start": span.start_time,
                "end": span.end_time,
                "attributes": dict(span.attributes),
                "events": [[e.name, e.timestamp, dict(e.attributes)] for e in span.events],
                "links": [[format(l.context.trace_id, "032x"), format(l.context.span_id, "016x")] for l in span.links],
                "status": [span.status.status_code.value, span.status.description or ""],
                "resource": dict(span.resource.attributes),
            }), flush=True)
        result = super().export(spans)
        assert result == SpanExportResult.SUCCESS, result
        return result


def traces(endpoint, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(RecordingSpans(endpoint=endpoint, headers=headers, timeout=10)))
    tracer = provider.get_tracer("weir.test.tracer", "2.0")
    linked = SpanContext(trace_id=0x11111111111111111111111111111111, span_id=0x2222222222222222, is_remote=True)
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER, attributes={"http.method": "GET"}):
        with tracer.start_as_current_span(
            "charge card", kind=SpanKind.CLIENT, links=[Link(linked)], attributes={"amount": 19.5, "attempt": 2}
        ) as child:
            child.add_event("retrying", {"after.ms": 40})
            child.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()


if __name__ == "__main__":
    command = sys.argv[1]
    {"logs": logs, "traces": traces}[command](*sys.argv[2:])
