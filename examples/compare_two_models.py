"""Compare how two models arrange the same tones: which keeps pitch, which keeps timbre?

    python examples/compare_two_models.py naive crepe-full

For each parameter, prints both models' median |log-ratio| (lower is better; chance is
what a shuffled embedding scores) and whether their 95 % bootstrap intervals overlap.
"""
import argparse

from gear.pipeline import GearConfig, run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs=2, metavar="MODEL")
    parser.add_argument("--out", default="gear-compare")
    parser.add_argument("--n-alpha", type=int, default=50)
    parser.add_argument("--n-r", type=int, default=50)
    args = parser.parse_args(argv)

    n_sounds = args.n_alpha * args.n_r
    config = GearConfig(
        grid_kwargs=dict(n_alpha=args.n_alpha, n_r=args.n_r),
        isomap_neighbors=min(100, n_sounds // 4),
        n_neighbors=min(40, n_sounds // 10),
    )
    first, second = run(args.models, out_dir=args.out, config=config)
    verdicts = {}
    print(f"{'parameter':<10}{first.name:>16}{second.name:>16}{'chance':>9}  verdict")
    for a, b in zip(first.scores, second.scores):
        if a["ci_high"] < b["ci_low"]:
            verdict = f"{first.name} keeps it better"
        elif b["ci_high"] < a["ci_low"]:
            verdict = f"{second.name} keeps it better"
        else:
            verdict = "no clear difference"
        verdicts[a["parameter"]] = verdict
        print(f"{a['parameter']:<10}{a['median_abs_log_ratio']:>16.3f}{b['median_abs_log_ratio']:>16.3f}{a['chance']:>9.3f}  {verdict}")
    print(f"report: {args.out}/report.html")
    return verdicts


if __name__ == "__main__":
    main()
