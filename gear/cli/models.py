"""``gear models``: every registered model, whether it can run here and where its weights are."""
from __future__ import annotations

from gear.errors import lower_layer_errors

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list registered models and whether they can run here")
    p.add_argument("--models-dir", default=None, help="folder of model files (default: $GEAR_MODELS_DIR)")
    p.add_argument("--layers", default=None, metavar="MODEL",
                   help="list the layers of MODEL that `gear run --layers` can score, by depth")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args) -> int:
    from embeddings import registry

    if args.layers is not None:
        return _print_layers(args.layers, args.models_dir)
    rows = []
    for spec in registry.list_models():
        with lower_layer_errors():
            rows.append(_row(spec, args.models_dir))
    widths = [max(len(str(r[i])) for r in rows + [("model", "runs", "default", "weights", "where")]) for i in range(4)]
    header = ("model", "runs", "default", "weights", "where / why not")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[4])
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    return 0


def _row(spec, models_dir) -> tuple:
    """(name, runs, default, weights, where) of one registered model."""
    ok, where = spec.can_run(models_dir)
    status = spec.weights(models_dir) if not spec.missing_requirements() else None
    if ok and spec.find_weights is None:
        weights = "none (DSP)"
    elif ok and status is not None and not status.real:
        weights = "random by design"
    elif ok:
        weights = "real weights"
    else:
        weights = "-"
    return (spec.name, "yes" if ok else "no", "yes" if spec.default else "", weights, where)


def _print_layers(name: str, models_dir) -> int:
    from embeddings import registry
    from gear.layers import layer_depths, select_layers

    with lower_layer_errors():
        spec = registry.get_spec(name)
        layers = select_layers(spec, "all", models_dir=models_dir)
    for layer, where in layer_depths(spec, layers).items():
        print(f"{where['branch'] + ' ' if where['branch'] else ''}{where['depth']}  {layer}")
    return 0
