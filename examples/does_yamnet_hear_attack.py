"""Does YAMNet hear attack time? The ``envelope`` family against YAMNet, CREPE and a log-mel baseline.

    python examples/does_yamnet_hear_attack.py                    # 1 024 tones (Sobol design)
    python examples/does_yamnet_hear_attack.py --n 64 --models logmel yamnet-tflite

The envelope family (``gear families``) renders harmonic tones with a linear attack of
``attack_ms`` (1 to 200 ms, log scale) and an exponential decay of ``decay_ms``. Each model
embeds every tone; for each factor GEAR scores how far a tone's K nearest neighbours in the
embedding are from its own value (median |log-ratio|: 0 = the neighbours share the value,
"chance" = what a shuffled embedding scores). A model "hears" attack when its attack score is
well below chance. CREPE, a pitch tracker, should keep f1 and ignore the envelope; a log-mel
spectrogram averaged over time sees the envelope only through the spectrum's level.
"""
import argparse

from gear.pipeline import GearConfig, run, stimuli_spec

MODELS = ("yamnet-tflite", "crepe-tiny", "logmel")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL")
    parser.add_argument("--n", type=int, default=1024, help="tones of the Sobol design (a power of two)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gear-attack")
    args = parser.parse_args(argv)

    config = GearConfig(
        stimuli=stimuli_spec("envelope", design="sobol", n=args.n, seed=args.seed),
        isomap_neighbors=min(100, args.n // 4),
        n_neighbors=min(40, max(2, args.n // 16)),
        n_bootstrap=200,
    )
    results = run(args.models, out_dir=args.out, config=config)
    hears = {}
    print(f"{'model':<16}{'factor':<11}{'median|log|':>12}{'chance':>9}  hears it?")
    for result in results:
        for row in result.scores:
            heard = row["ci_high"] < 0.5 * row["chance"]
            hears[(result.name, row["parameter"])] = heard
            print(f"{result.name:<16}{row['parameter']:<11}{row['median_abs_log_ratio']:>12.3f}{row['chance']:>9.3f}"
                  f"  {'yes' if heard else 'no'}")
    print(f"report: {args.out}/report.html")
    return results, hears


if __name__ == "__main__":
    main()
