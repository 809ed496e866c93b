"""``gear synth``: the tone set as WAV files with ``parameters.csv``."""
from __future__ import annotations

import functools

from gear.cli.common import add_grid_arguments, grid_kwargs, stimuli_from_args
from gear.errors import lower_layer_errors

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("synth", help="write the tone set as WAV files with parameters.csv",
                       description="Write OUT/tone_NNNNN.wav and OUT/parameters.csv "
                       "(index,file,sample_rate,n_samples, then one column per factor: f1_bins,f1_hz,alpha,r for "
                       "the harmonic presets, the family's factors with --family).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--sample-rate", type=int, default=16000, help="sample rate of the files in Hz")
    p.add_argument("--subtype", default="FLOAT", help="WAV subtype (FLOAT, PCM_16, PCM_24)")
    p.add_argument("-q", "--quiet", action="store_true")
    add_grid_arguments(p)
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args) -> int:
    from gear.dataset import write_dataset
    from gear.pipeline import GearConfig

    tone_set = GearConfig(preset=args.preset, grid_kwargs=grid_kwargs(args), stimuli=stimuli_from_args(args)).tone_set()
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = functools.partial(tqdm, desc="writing WAV files", unit="file", leave=False)
    with lower_layer_errors():
        path = write_dataset(tone_set, args.out, sample_rate=args.sample_rate, subtype=args.subtype, progress=progress)
    if not args.quiet:
        print(f"{tone_set.n_sounds} tones at {args.sample_rate} Hz; parameters: {path}")
    return 0
