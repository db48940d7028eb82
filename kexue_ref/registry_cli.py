"""``kexue-ref cases [PATTERN] [--tier T]``: list registry rows and their case ids."""
from kexue_ref import registry


def add_parser(sub):
    p = sub.add_parser("cases", help="list registry ops and their cases")
    p.add_argument("pattern", nargs="?", default="*", help="glob over op names, e.g. 'smoothing.*'")
    p.add_argument("--tier", default="all", help="quick, full, edge, error or all (default)")
    p.set_defaults(func=run)


def run(args):
    specs = registry.select_ops(args.pattern)
    if not specs:
        print(f"no op matches {args.pattern!r}")
        return 1
    for spec in specs:
        cs = registry.cases(spec, args.tier)
        print(f"{spec.name}  ({len(cs)} cases; inputs {', '.join(spec.inputs) or '-'}; "
              f"differentiable {', '.join(spec.diff) or '-'})\n    source: {spec.source}")
        for c in cs:
            note = f"  # {c.defn.note}" if c.defn.note else ""
            print(f"    {c.tier:<5} {c.id}{note}")
    return 0
