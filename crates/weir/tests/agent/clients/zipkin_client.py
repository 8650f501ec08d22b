"""Reports a small trace to weir with py_zipkin, a Zipkin client nobody
here wrote, and prints each payload it sent as JSON spans (decoding the
proto3 payloads with py_zipkin's own decoder), a list a line.

spans HOST PORT json|proto3
"""
import json
import sys

from py_zipkin import Encoding, Kind
from py_zipkin.encoding._decoders import get_decoder
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import zipkin_span


class Recording(SimpleHTTPTransport):
    def __init__(self, host, port, encoding):
        super().__init__(host, port)
        self.encoding = encoding

    def send(self, payload):
        super().send(payload)
        if self.encoding == Encoding.V2_JSON:
            print(payload if isinstance(payload, str) else payload.decode(), flush=True)
        else:
            print(json.dumps({"proto3_bytes": len(payload)}), flush=True)


def spans(host, port, encoding):
    encoding = {"json": Encoding.V2_JSON, "proto3": Encoding.V2_PROTO3}[encoding]
    transport = Recording(host, int(port), encoding)
    with zipkin_span(
        service_name="frontend",
        span_name="get /checkout",
        transport_handler=transport,
        sample_rate=100.0,
        encoding=encoding,
        use_128bit_trace_id=True,
        kind=Kind.SERVER,
        binary_annotations={"http.method": "GET"},
    ):
        with zipkin_span(service_name="frontend", span_name="charge", kind=Kind.CLIENT) as child:
            child.add_annotation("wire send")
            child.update_binary_annotations({"amount": "19.50"})
            child.add_sa_binary_annotation(port=9000, service_name="payments", host="10.0.0.7")


if __name__ == "__main__":
    {"spans": spans}[sys.argv[1]](*sys.argv[2:])
