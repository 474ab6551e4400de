"""The ``placehub`` command: thin wrappers that parse, call one function and report."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from connectors.csv_drop import CsvDrop, IngestSummary
from connectors.mapping import EventMapping
from connectors.simulate import Place
from connectors.sql_poll import SqlPoll
from hub import (
    broker,
    broker_security,
    catalogue,
    contracts,
    kafka_acls,
    onboarding,
)
from hub._admin import admin_client
from hub.config import PROJECT_ROOT, load_settings
from hub.demo import run_demo
from hub.errors import ConfigError, HubError, SetupError
from hub.registry import SchemaRegistry
from hub.replay import replay
from hub.topics import Topics
from hub.worker import run_worker

__all__ = ["main"]


def _broker(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "env":
        for line in broker.admin_env(settings).splitlines():
            print(f"export {line}")
        return 0
    if args.action == "start":
        state = broker.start(settings, nodes=args.nodes, secure=True if args.secure else None)
    elif args.action == "stop":
        state = broker.stop(settings)
    else:
        state = broker.status(settings)
    if args.json:
        print(json.dumps(asdict(state), default=str))
    else:
        print(state.describe())
    return 0 if args.action == "stop" or state.answering else 1


def _principal(args: argparse.Namespace) -> kafka_acls.Principal:
    settings = load_settings()
    topics = Topics(settings.topic_prefix)
    if args.partner:
        return kafka_acls.partner(args.partner, topics)
    if args.worker:
        return kafka_acls.worker(args.worker, settings.app_id, topics)
    partner, _, name = args.connector.partition(":")
    return kafka_acls.connector(partner, name, topics)


def _kafka(args: argparse.Namespace) -> int:
    principal = _principal(args)
    report: dict[str, object] = {"principal": principal.kafka_principal}
    if args.action == "grants":
        report["grants"] = [asdict(grant) for grant in kafka_acls.grants_for(principal)]
    else:
        settings = load_settings()
        with admin_client(settings) as admin:
            if args.action == "add":
                files = broker_security.SecurityFiles(settings.broker_dir.absolute() / "security")
                target = args.password_file or files.password_file(principal.name)
                password = kafka_acls.new_password()
                added, removed = kafka_acls.onboard(admin, principal, password)
                report.update(
                    password_file=str(broker_security.store_password(target, password)),
                    acls_added=added,
                    acls_removed=removed,
                )
            else:
                report["acls_removed"] = kafka_acls.revoke(admin, principal)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            rows = value if isinstance(value, list) else [value]
            for row in rows:
                shown = " ".join(str(v) for v in row.values()) if isinstance(row, dict) else row
                print(f"{key:<16} {shown}")
    return 0


def _partners(args: argparse.Namespace) -> int:
    settings = load_settings()
    quiet = (lambda line: None) if args.json else print
    if args.action != "list" and not args.id:
        raise ConfigError(f"partners {args.action} needs the partner's id")
    if args.action == "add":
        if not (args.name and args.sector):
            raise ConfigError("partners add needs --name and --sector")
        handover = onboarding.add_partner(
            settings,
            args.id,
            name=args.name,
            sector=args.sector,
            secrets_dir=args.secrets_dir,
            wait_s=args.wait,
            kafka_user=not args.no_kafka_user,
            progress=quiet,
        )
        report: object = {
            "partner": args.id,
            "kafka_user": handover.kafka_user,
            "password_file": handover.password_file and str(handover.password_file),
            "token_file": str(handover.token_file),
            "workers_joined": handover.workers_joined,
        }
        text = handover.describe()
    elif args.action == "remove":
        revocation = onboarding.remove_partner(settings, args.id, kafka_user=not args.no_kafka_user)
        report, text = asdict(revocation), revocation.describe()
    else:
        found = onboarding.list_registrations(settings)
        report = [{"id": r.partner.id, "name": r.partner.name, "removed": r.removed} for r in found]
        text = (
            "\n".join(
                f"{r.partner.id:<24} {'removed' if r.removed else 'active':<8} {r.partner.name}"
                for r in found
            )
            or "no partner was added with partners add"
        )
    print(json.dumps(report) if args.json else text)
    return 0


def _worker(args: argparse.Namespace) -> int:
    run_worker(load_settings(), loglevel=args.loglevel)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    place = Place(seed=args.seed, people=args.people)
    counts = place.publish(load_settings(), args.events, rate_per_s=args.rate)
    if args.json:
        print(json.dumps(counts))
    else:
        for partner, count in counts.items():
            print(f"{partner:<20} {count:>8} events published")
    return 0


def _replay(args: argparse.Namespace) -> int:
    deleted = replay(load_settings(), progress=(lambda line: None) if args.json else print)
    if args.json:
        print(json.dumps({"deleted_topics": deleted}))
    return 0


def _report(summary: IngestSummary, as_json: bool) -> int:
    """Print an ingest summary; exit 0 when every row was published, 1 if some were rejected."""
    print(summary.to_json() if as_json else summary.describe())
    return 1 if summary.rejected else 0


def _ingest_csv(args: argparse.Namespace) -> int:
    drop = CsvDrop(
        args.file,
        args.partner,
        EventMapping.load(args.mapping),
        load_settings(),
        reject_path=args.reject_file,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    return _report(drop.run(), args.json)


def _ingest_sql(args: argparse.Namespace) -> int:
    poll = SqlPoll(
        args.dsn,
        args.query_file,
        args.partner,
        EventMapping.load(args.mapping),
        load_settings(),
        watermark=args.watermark,
        key=args.key,
        name=args.name,
        batch_size=args.batch_size,
        reject_path=args.reject_file,
    )
    summary = poll.poll_once() if args.once else poll.run(args.interval_s)
    return _report(summary, args.json)


def _bench(args: argparse.Namespace) -> int:
    # The benchmarks live with the tests (tests/bench), outside the installed packages and
    # with dev-only dependencies, so they are imported from the source tree on demand.
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    try:
        bench = importlib.import_module("tests.bench.run")
    except ImportError as exc:
        raise SetupError(
            f"placehub bench needs a source checkout with the dev extras ({exc}); "
            "run `make unit` once to install them"
        ) from None
    only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(only) - set(bench.SCENARIOS))
    if unknown:
        raise SetupError(f"unknown scenario(s) {unknown}; choose from {list(bench.SCENARIOS)}")
    # The bench's simulated places are test data: they run on the public test key.
    os.environ.setdefault("PLACEHUB_ALLOW_TEST_KEY", "1")
    status: int = bench.run_bench(
        load_settings(),
        quick=args.quick,
        only=only,
        json_path=args.json,
        profile=args.profile,
        scale_people=args.scale_people,
    )
    return status


def _demo(args: argparse.Namespace) -> int:
    return run_demo(load_settings(), people=args.people, rate_per_s=args.rate)


def _schemas(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _schemas_check(args.json)
    if args.action == "docs":
        return _schemas_docs(args.check)
    settings = load_settings()
    registry = SchemaRegistry(settings)
    try:
        if args.action == "register":
            versions = contracts.register(registry, settings)
        else:
            versions = [v for name in registry.subject_names() for v in registry.versions(name)]
    finally:
        registry.close()
    if args.json:
        print(json.dumps([asdict(version) for version in versions]))
    for v in [] if args.json else versions:
        print(f"{v.subject:<48} version {v.version:<4} id {v.schema_id}")
    return 0


def _schemas_check(as_json: bool) -> int:
    findings = contracts.check()
    if as_json:
        print(json.dumps([asdict(finding) for finding in findings]))
    elif findings:
        print("\n".join(map(str, findings)), file=sys.stderr)
    else:
        print(f"{len(contracts.load_contracts())} schemas honour their compatibility modes")
    return 1 if findings else 0


def _schemas_docs(check_only: bool) -> int:
    path = catalogue.DOCS_PATH
    if check_only:
        current = path.exists() and path.read_text() == catalogue.render_markdown()
        if not current:
            print(f"{path} is stale: run `placehub schemas docs`", file=sys.stderr)
        return 0 if current else 1
    catalogue.write_docs()
    print(f"wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="placehub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    broker = commands.add_parser("broker", help="run the local Kafka broker (KRaft)")
    broker.add_argument(
        "action",
        choices=["start", "stop", "status", "env"],
        help="env: the PLACEHUB_* exports that make a client the secured cluster's admin",
    )
    broker.add_argument("--nodes", type=int, default=1, help="brokers in the local cluster")
    broker.add_argument(
        "--secure",
        action="store_true",
        help="start: SASL_SSL (SCRAM-SHA-512) listeners, TLS from a local CA, ACLs "
        "(also PLACEHUB_BROKER_SECURE=1)",
    )
    broker.add_argument("--json", action="store_true", help="report as JSON")
    broker.set_defaults(run=_broker)

    kafka = commands.add_parser(
        "kafka", help="a Kafka principal's SCRAM credential and ACLs (hub.kafka_acls)"
    )
    kafka.add_argument(
        "action",
        choices=["grants", "add", "remove"],
        help="grants: what the principal may do (no broker needed); add: make or rotate its "
        "credential and apply its ACLs; remove: revoke both",
    )
    who = kafka.add_mutually_exclusive_group(required=True)
    who.add_argument("--partner", metavar="ID", help="a partner's principal")
    who.add_argument("--worker", metavar="NAME", help="a hub worker's principal")
    who.add_argument("--connector", metavar="PARTNER:NAME", help="a partner's connector")
    kafka.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help="add: where the new password goes (default: the local broker's "
        "security/users/<principal>.password), mode 0600",
    )
    kafka.add_argument("--json", action="store_true", help="report as JSON")
    kafka.set_defaults(run=_kafka)

    partners = commands.add_parser(
        "partners",
        help="onboard a partner in one step (topics, Kafka principal, ingest token, "
        "workers), remove one, or list those added",
    )
    partners.add_argument("action", choices=["add", "remove", "list"])
    partners.add_argument("id", nargs="?", default=None, help="the partner's id (add, remove)")
    partners.add_argument("--name", help="add: the organisation's name")
    partners.add_argument("--sector", help="add: its sector (e.g. housing, health, charity)")
    partners.add_argument(
        "--secrets-dir",
        type=Path,
        default=None,
        help="add: where its Kafka password and ingest token go (mode 0600; default "
        ".state/partners/<id>/)",
    )
    partners.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="add: seconds to wait for the workers to answer for it (0: do not wait)",
    )
    partners.add_argument(
        "--no-kafka-user",
        action="store_true",
        help="make or revoke no Kafka principal (on Strimzi the User Operator owns them: "
        "python deploy/render.py --kafka-user <id>)",
    )
    partners.add_argument("--json", action="store_true", help="report as JSON")
    partners.set_defaults(run=_partners)

    worker = commands.add_parser("worker", help="run a hub worker (gate, view, API)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(run=_worker)

    simulate = commands.add_parser("simulate", help="publish a synthetic place's events")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--people", type=int, default=200)
    simulate.add_argument("--events", type=int, default=1000)
    simulate.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    simulate.add_argument("--json", action="store_true", help="report as JSON")
    simulate.set_defaults(run=_simulate)

    replay_cmd = commands.add_parser(
        "replay", help="delete derived state so workers rebuild it from the partner topics"
    )
    replay_cmd.add_argument("--json", action="store_true", help="report as JSON")
    replay_cmd.set_defaults(run=_replay)

    schemas = commands.add_parser(
        "schemas", help="the Avro contracts: check evolution, register, list, write docs"
    )
    schemas.add_argument(
        "action",
        choices=["check", "register", "list", "docs"],
        help="check: each schema honours its mode against every earlier version; register: "
        "register them in the _schemas topic; list: the registered subjects; docs: write "
        "docs/catalogue.md",
    )
    schemas.add_argument("--json", action="store_true", help="report as JSON")
    schemas.add_argument("--check", action="store_true", help="docs: fail if the file is stale")
    schemas.set_defaults(run=_schemas)

    ingest = commands.add_parser("ingest", help="publish a partner's records from a file or table")
    sources = ingest.add_subparsers(dest="source", required=True)
    csv_drop = sources.add_parser("csv", help="import a CSV file through a mapping (resumable)")
    csv_drop.add_argument("file", type=Path)
    _ingest_options(csv_drop)
    csv_drop.add_argument(
        "--reject-file", type=Path, default=None, help="default: FILE's name + .rejects.csv"
    )
    csv_drop.add_argument("--batch-size", type=int, default=500)
    csv_drop.add_argument("--no-progress", action="store_true", help="no progress bar")
    csv_drop.set_defaults(run=_ingest_csv)

    sql_poll = sources.add_parser("sql", help="poll a PostgreSQL query by a watermark column")
    sql_poll.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    sql_poll.add_argument("--query-file", type=Path, required=True, help="a SELECT statement")
    _ingest_options(sql_poll)
    sql_poll.add_argument("--watermark", default="updated_at", help="column that grows on change")
    sql_poll.add_argument("--key", default="id", help="unique key column (tie-break)")
    sql_poll.add_argument("--name", default=None, help="position name (default: query file stem)")
    sql_poll.add_argument("--batch-size", type=int, default=500)
    sql_poll.add_argument("--reject-file", type=Path, default=None)
    sql_poll.add_argument("--once", action="store_true", help="poll until caught up, then exit")
    sql_poll.add_argument("--interval-s", type=float, default=30.0, help="seconds between polls")
    sql_poll.set_defaults(run=_ingest_sql)

    bench = commands.add_parser(
        "bench", help="benchmarks beside raw-client baselines measured in the same run"
    )
    bench.add_argument("--quick", action="store_true", help="smaller loads (about 3 minutes)")
    bench.add_argument("--json", type=Path, default=None, help="write the report here")
    bench.add_argument(
        "--only", default="", help="comma-separated: ingest,pipeline,latency,alerts,query,scale"
    )
    bench.add_argument(
        "--profile", action="store_true", help="run the pipeline's workers under pyinstrument"
    )
    bench.add_argument(
        "--scale-people",
        type=int,
        default=None,
        metavar="N",
        help="also load the RocksDB store to N people, e.g. 1000000 (measured, not "
        "extrapolated, then restarted; about N/1,500 seconds more)",
    )
    bench.set_defaults(run=_bench)

    demo = commands.add_parser(
        "demo", help="the whole place, simulated: broker, worker, partners, API"
    )
    demo.add_argument("--people", type=int, default=200)
    demo.add_argument("--rate", type=float, default=20.0, help="events per second once running")
    demo.set_defaults(run=_demo)
    return parser


def _ingest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partner", required=True, help="the partner id publishing")
    parser.add_argument("--mapping", type=Path, required=True, help="mapping YAML file")
    parser.add_argument("--json", action="store_true", help="report the summary as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``placehub`` console command."""
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except HubError as exc:
        print(f"placehub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
