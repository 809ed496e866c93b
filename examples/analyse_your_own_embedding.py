"""Score an embedding computed outside GEAR (any function of the audio).

    python examples/analyse_your_own_embedding.py

Renders the paper's tones, embeds them with a function of your own (here: the log
magnitude spectrum, a representation that should keep f1 and alpha), and scores it with
the same analysis as `gear run`.
"""
import argparse

import numpy as np

import synth
from gear.pipeline import GearConfig, analyse_embedding


def my_embedding(audio: np.ndarray) -> np.ndarray:
    """(n_sounds, n_samples) -> (n_sounds, n_bins): log-magnitude spectrum."""
    return np.log(np.abs(np.fft.rfft(audio, axis=-1)) + 1e-3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-alpha", type=int, default=50)
    parser.add_argument("--n-r", type=int, default=50)
    args = parser.parse_args(argv)

    tones = synth.paper_grid(n_alpha=args.n_alpha, n_r=args.n_r)
    audio = tones.render(sample_rate=16000)  # (n_sounds, 1024) float32
    n_sounds = tones.n_sounds
    config = GearConfig(isomap_neighbors=min(100, n_sounds // 4), n_neighbors=min(40, n_sounds // 10))
    result = analyse_embedding("log-spectrum", my_embedding(audio), tones, config=config)
    for row in result.scores:
        print(f"{row['parameter']:>6}: {row['median_abs_log_ratio']:.3f} (chance {row['chance']:.3f})")
    return result


if __name__ == "__main__":
    main()
