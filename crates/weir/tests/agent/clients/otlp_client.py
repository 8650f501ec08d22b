"""Exports logs to weir with the OpenTelemetry Python SDK and its
OTLP/HTTP exporter (protobuf), and prints, a JSON object a line, each log
record exactly as the exporter was handed it, for the test to compare with
what weir wrote.

logs ENDPOINT [json|protobuf] [TOKEN]
"""
import json
import sys

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags


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
    exporter = Recording(endpoint=endpoint, headers=headers, timeout=10)
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


if __name__ == "__main__":
    command = sys.argv[1]
    {"logs": logs}[command](*sys.argv[2:])
