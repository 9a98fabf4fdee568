"""A reference sector adapter in Python: the health sector, served over
mutual TLS to the lienthong gateway only, against the published protos
(lienthong.adapter.v1), with grpc.health.v1 beside it.

A ministry writing its own adapter, in any language, does what this file
does: generate the code from proto/lienthong/adapter/v1/adapter.proto (and
the lienthong/v1 protos it imports), serve SectorAdapterService with its
certificate from the gateway's PKI, accept calls only from a client
certificate of the gateway's CA whose common name is lienthong-gateway, and
answer Lookup with the typed answer, NOT_FOUND for a person it holds no
record of, INVALID_ARGUMENT for a malformed Pid or a query it does not
answer. Then it runs the conformance kit against itself:

    lienthong-adapter conformance --endpoint https://127.0.0.1:50762 \
        --sector health --pki-dir lienthong-data/pki --pid 001089000001

Run it:

    python3 -m venv venv && venv/bin/pip install -r adapters/python/requirements.txt
    venv/bin/python adapters/python/reference_adapter.py \
        --listen 127.0.0.1:50762 --pki-dir lienthong-data/pki

It generates its gRPC code from the protos at start (--proto-dir) into a
temporary directory. Its records are a JSON file (--records); a real
adapter reads the sector's database. `--broken CHECK` serves a deliberately
broken variant, one a conformance check must catch (the kit's tests).
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

GATEWAY_CN = b"lienthong-gateway"
SECTOR = "health"
QUERIES = ["insurance_card", "vaccinations"]
SERVICE = "lienthong.adapter.v1.SectorAdapterService"
HERE = os.path.dirname(os.path.abspath(__file__))

BROKEN = [
    "no-client-auth",  # no client certificate asked for, none checked
    "any-client",  # any certificate of the CA let through, not only the gateway's
    "no-health",  # grpc.health.v1 not served
    "wrong-sector",  # Describe names another sector
    "wrong-answer",  # insurance_card answered with vaccinations
    "found-unknown",  # a Pid it does not hold answered anyway
    "lenient-pid",  # a malformed Pid is NOT_FOUND, not INVALID_ARGUMENT
    "slow",  # every Lookup takes a second
]


def generate(proto_dir):
    """Generates the Python code of the adapter protos; returns the
    directory it is in (put on sys.path)."""
    out = tempfile.mkdtemp(prefix="lienthong-adapter-py-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    protos = [
        "lienthong/v1/common.proto",
        "lienthong/v1/sector.proto",
        "lienthong/adapter/v1/adapter.proto",
    ]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
         "--python_out", out, "--grpc_python_out", out] + protos,
        check=True,
    )
    return out


def valid_pid(pid):
    return len(pid) == 12 and pid.isascii() and pid.isdigit()


class Adapter:
    """SectorAdapterService over the records."""

    def __init__(self, records, broken, pb):
        self.records = records
        self.broken = broken
        self.adapter_pb2, self.sector_pb2, self.common_pb2 = pb

    def _only_the_gateway(self, context):
        if self.broken in ("no-client-auth", "any-client"):
            return
        names = context.auth_context().get("x509_common_name", [])
        if names != [GATEWAY_CN]:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "only the gateway may call")

    def _date(self, ymd):
        year, month, day = ymd
        return self.common_pb2.Date(year=year, month=month, day=day)

    def Lookup(self, request, context):
        self._only_the_gateway(context)
        if self.broken == "slow":
            time.sleep(1.0)
        if not valid_pid(request.pid):
            if self.broken == "lenient-pid":
                context.abort(grpc.StatusCode.NOT_FOUND, "no record")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "pid: 12 digits expected")
        if request.query not in QUERIES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this sector answers " + ", ".join(QUERIES))
        record = self.records.get(request.pid)
        if record is None and self.broken == "found-unknown":
            record = next(iter(self.records.values()))
        if record is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "the sector has no record of this person")
        s = self.sector_pb2
        if request.query == "insurance_card" and self.broken != "wrong-answer":
            answer = s.SectorAnswer(health_insurance_card=s.HealthInsuranceCard(
                card_number=record["card_number"],
                valid_from=self._date(record["valid_from"]),
                valid_to=self._date(record["valid_to"]),
                registered_clinic=record["registered_clinic"],
                benefit_level=record["benefit_level"],
                status=s.CARD_STATUS_VALID,
            ))
        else:
            answer = s.SectorAnswer(vaccinations=s.Vaccinations(vaccinations=[
                s.Vaccination(vaccine=v, dose=d, given_on=self._date(on))
                for v, d, on in record["vaccinations"]
            ]))
        return self.adapter_pb2.LookupResponse(answer=answer)

    def Describe(self, request, context):
        self._only_the_gateway(context)
        sector = "education" if self.broken == "wrong-sector" else SECTOR
        return self.adapter_pb2.DescribeResponse(sector=sector, queries=QUERIES)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:50762")
    p.add_argument("--pki-dir", default="lienthong-data/pki",
                   help="the gateway's PKI: ca.pem, adapters/health.pem/.key")
    p.add_argument("--records", default=os.path.join(HERE, "records.json"))
    p.add_argument("--proto-dir", default=os.path.join(HERE, "..", "..", "proto"))
    p.add_argument("--broken", choices=BROKEN)
    args = p.parse_args()

    sys.path.insert(0, generate(args.proto_dir))
    from lienthong.adapter.v1 import adapter_pb2, adapter_pb2_grpc
    from lienthong.v1 import common_pb2, sector_pb2

    def read(name):
        with open(os.path.join(args.pki_dir, name), "rb") as f:
            return f.read()

    with open(args.records, encoding="utf-8") as f:
        records = json.load(f)
    credentials = grpc.ssl_server_credentials(
        [(read("adapters/health.key"), read("adapters/health.pem"))],
        root_certificates=read("ca.pem"),
        require_client_auth=args.broken != "no-client-auth",
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    adapter_pb2_grpc.add_SectorAdapterServiceServicer_to_server(
        Adapter(records, args.broken, (adapter_pb2, sector_pb2, common_pb2)), server)
    if args.broken != "no-health":
        checks = health.HealthServicer()
        for service in ("", SERVICE):
            checks.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    port = server.add_secure_port(args.listen, credentials)
    if port == 0:
        sys.exit(f"cannot listen on {args.listen}")
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    print(f"reference adapter serving {SECTOR} on {host}:{port} (mTLS, the gateway only)"
          + (f"; broken: {args.broken}" if args.broken else ""), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
