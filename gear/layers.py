"""Layer-wise probes (``gear run --layers``): the time-pooled output of named layers of a model,
read by forward hooks during the normal embedding pass, stored as results ``MODEL/LAYER``.

Which layers
------------
A registered model lists its probed layers in :attr:`embeddings.base.ModelSpec.layers`, ordered
by depth (1 = closest to the audio): a path in the model's ``taps`` (identity modules the
adapter's forward pass runs its intermediate outputs through, :func:`embeddings.hear_model.make_taps`,
nested ``ModuleDict`` s for a model of several networks) or a sub-module path (``model.get_submodule``).
The list is a tuple, or a function of the weights' path when checkpoints of one architecture differ
in depth (wav2vec2, GURA: read from ``config.json``). Today: ``naive`` (power spectrum, log-mel,
projection), ``crepe-full`` / ``crepe-tiny`` (the five convolutional blocks), ``aisfx``
(``net.conv_block1`` .. ``net.conv_block4``), the OpenL3 variants (the eight Keras convolutions),
``byols`` (three conv blocks and the MLP), ``hybrid-byols`` (three CvT stages), ``wav2vec2`` (the
feature encoder's convolutions and every transformer layer) and ``gura-fusion-cat-xwc`` (the same
for its HuBERT and wav2vec2 backbones, and its CREPE blocks: three branches, ``spec.layer_branches``,
each with its own depth, :func:`layer_depths`). Models whose network does not run as torch modules
(the DSP representations, YAMNet's TFLite interpreter, musicnn's TensorFlow session, ...) have no
layers: asking for them is a :class:`gear.errors.ParameterError`.

One forward pass
----------------
Hooks are registered on every requested layer at once; each batch of tones goes through the
model's ``get_scene_embeddings`` exactly once (the call that gives the ``MODEL`` result, whose
embedding is unchanged: hooks only read). Each hook pools the output of every call as it comes
(no layer output is held whole), so a batch costs the plain pass plus the pooling.

Pooling (one vector per sound)
------------------------------
A layer's output has the adapter's rows first (frames, blocks or sounds, in sound-major order,
as the adapters batch them) and then PyTorch's layout ``(channels, time, frequency...)``:

1. a vector per row ``(rows, D)`` is kept as it is;
2. a feature map ``(rows, C, T, F...)`` is averaged over its time axis ``T`` (the axis after the
   channels), then flattened to ``C x F...`` values; when that exceeds ``max_dim`` (``--max-dim``,
   default 65 536, the store's size limit) it is averaged over the remaining axes too, to ``C``
   values, and the result's description says so;
3. the rows of each sound (its frames or blocks) are averaged: the time-axis mean that HEAR's
   scene embeddings take.

A layer still above ``max_dim`` after this (``C > max_dim``) is refused with the sizes named.
Numbers for the layered models (64 ms paper tones: one frame or block per tone), output per row
-> stored dimension:

- ``naive``: ``power`` 2 049 -> 2 049, ``log_mel`` 256 -> 256, ``projection`` 4 096 -> 4 096 (the
  embedding itself);
- ``crepe-full``: ``conv1`` (1 024, 128, 1) -> 1 024, ``conv2`` .. ``conv4`` (128, 64 / 32 / 16, 1)
  -> 128, ``conv5`` (256, 8, 1) -> 256; ``crepe-tiny``: 128, 16, 16, 16, 32;
- ``aisfx``: ``net.conv_block1`` (64, 50, 48) -> 3 072, ``conv_block2`` (128, 25, 24) -> 3 072,
  ``conv_block3`` (256, 12, 12) -> 3 072, ``conv_block4`` (512, 12, 12) -> 6 144 (its embedding is
  the max over time of the mean over frequency of ``conv_block4``).

Flattening everything instead would give CREPE full's ``conv1`` 131 072 values per tone (1.3 GB
for the 2 500 paper tones, above the limit) and aiSFX's first block 153 600; the time mean keeps
every layer of these models under 6 144 values without a second rule.

CREPE's block axis ``T`` is time within the 64 ms frame, so ``conv5`` is the embedding (256 x 8
positions, flattened) averaged over its 8 positions; naive's ``projection`` is its embedding.

Caching
-------
Each layer's pooled batches are cached under their own key (:func:`gear.embedder.model_cache`
with ``layer``, ``max_dim`` and :data:`POOLING_VERSION`), never under the model's.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from gear.errors import ParameterError, lower_layer_errors
from gear.files import atomic_write_text

__all__ = ["POOLING_VERSION", "LayerRecorder", "LayeredRun", "select_layers", "layer_depths", "layer_modules",
           "pool_output", "embed_layers", "layer_entries", "layers_section"]

#: Version of the pooling rule above (part of the layer caches' key).
POOLING_VERSION = 1
_LAYER_FILE = "layer.json"


# ----------------------------------------------------------------------------- which layers
def select_layers(spec, layers: Union[str, Sequence[str]], *, models_dir=None) -> Tuple[str, ...]:
    """The layers of ``spec`` that ``layers`` names (``"all"``, ``"a,b"`` or a list), in depth order.

    Raises
    ------
    ParameterError
        The model has no probed layers, or a name is not one of its layers.
    EmbeddingError
        Its layers are read from weights that are not here (:meth:`embeddings.base.ModelSpec.layer_names`).
    """
    from embeddings import registry

    if not spec.layers:
        raise ParameterError(
            f"model {spec.name!r} has no layers GEAR can probe (its network does not run as named torch "
            f"modules); --layers works for: {', '.join(registry.layered_models())}. Drop --layers, or run "
            f"{spec.name!r} without it")
    available = spec.layer_names(models_dir)
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else [str(s).strip() for s in layers]
    if names == ["all"]:
        return available
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ParameterError(
            f"--layers {','.join(names)!r}: model {spec.name!r} has no layer {(unknown or [''])[0]!r}; its layers "
            f"are {', '.join(available)} (or 'all'); see `gear models --layers {spec.name}`")
    return tuple(n for n in available if n in names)


def layer_depths(spec, layers: Sequence[str]) -> Dict[str, dict]:
    """``{layer: {"branch", "depth", "n_layers"}}``: depth 1 = closest to the audio, counted in the
    order of ``layers`` (all of the model's layers, by depth) and, for a model of several networks
    (``spec.layer_branches``), within its branch (the name up to the first ``"."``)."""
    out: Dict[str, dict] = {}
    for layer in layers:
        branch = layer.split(".", 1)[0] if spec.layer_branches else ""
        siblings = [n for n in layers if not spec.layer_branches or n.split(".", 1)[0] == branch]
        out[layer] = {"branch": branch, "depth": siblings.index(layer) + 1, "n_layers": len(siblings)}
    return out


def layer_modules(model, names: Sequence[str], *, model_name: str = "model") -> Dict[str, object]:
    """``{name: torch module}``: each name a key of ``model.taps`` or a sub-module path.

    Raises
    ------
    ParameterError
        ``model`` is not a ``torch.nn.Module``, or a name is neither.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model {model_name!r} is a {type(model).__name__}, not a torch.nn.Module: its layers "
                             f"cannot be read with forward hooks")
    taps = getattr(model, "taps", None)
    out = {}
    for name in names:
        for root in ((taps,) if isinstance(taps, torch.nn.Module) else ()) + (model,):
            try:
                out[name] = root.get_submodule(name)
                break
            except AttributeError:
                continue
        else:
            raise ParameterError(f"model {model_name!r} has no layer {name!r} (neither a tap nor a sub-module of "
                                 f"{type(model).__name__})") from None
    return out


# ----------------------------------------------------------------------------- pooling
def pool_output(output, *, max_dim: int, name: str = "layer") -> Tuple[np.ndarray, str]:
    """One layer call's output pooled per row (see the module docstring, steps 1-2).

    Parameters
    ----------
    output : torch.Tensor, shape (rows,), (rows, D) or (rows, C, T, F...)
    max_dim : int
        Largest flattened ``C x F...`` kept; above, also averaged over ``F...``.

    Returns
    -------
    pooled : np.ndarray, shape (rows, dim), float32
    note : str
        How it was pooled, in words.
    """
    import torch

    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ParameterError(f"layer {name!r} returns a {type(output).__name__}, not a tensor: it cannot be pooled")
    x = output.detach().float()
    shape = tuple(x.shape[1:])
    if x.ndim <= 2:
        x = x.reshape(x.shape[0], -1)
        note = f"output {shape or (1,)} per row, kept"
    else:
        x = x.mean(dim=2)  # the time axis, after the channels
        if int(np.prod(x.shape[1:])) <= max_dim:
            note = f"output {shape} per row (channels, time, ...): mean over time, flattened"
        else:
            x = x.reshape(x.shape[0], x.shape[1], -1).mean(dim=2)
            note = (f"output {shape} per row (channels, time, ...): mean over time, then over the other "
                    f"positions ({int(np.prod(shape[:1] + shape[2:])):,} > max_dim {max_dim:,} values)")
        x = x.reshape(x.shape[0], -1)
    if x.shape[1] > max_dim:
        raise ParameterError(
            f"layer {name!r} gives {x.shape[1]:,} values per sound after pooling ({note}), above the limit "
            f"--max-dim {max_dim:,}: leave it out of --layers or raise --max-dim")
    return x.cpu().numpy().astype(np.float32, copy=False), note + f" -> {x.shape[1]:,}-d"


class LayerRecorder:
    """Forward hooks on named modules that pool each call's output as it comes.

    Use as a context manager (the hooks are removed on exit). :meth:`take` returns and clears
    what a batch of ``n_sounds`` sounds gave; :attr:`calls` counts each layer's forward calls.
    """

    def __init__(self, modules: Dict[str, object], *, max_dim: int):
        self.modules = dict(modules)
        self.max_dim = int(max_dim)
        self.calls = {name: 0 for name in self.modules}
        self.notes: Dict[str, str] = {}
        self._rows: Dict[str, List[np.ndarray]] = {name: [] for name in self.modules}
        self._handles = []

    def __enter__(self) -> "LayerRecorder":
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            pooled, self.notes[name] = pool_output(output, max_dim=self.max_dim, name=name)
            self._rows[name].append(pooled)
            self.calls[name] += 1

        return hook

    def take(self, n_sounds: int) -> Dict[str, np.ndarray]:
        """``{name: (n_sounds, dim) float32}``: each layer's rows since the last call, averaged per
        sound (the rows of a sound are consecutive: sound-major order)."""
        out = {}
        for name, parts in self._rows.items():
            if not parts:
                raise ParameterError(f"layer {name!r} did not run during the forward pass; it cannot be probed")
            rows = np.concatenate(parts)
            if rows.shape[0] % n_sounds:
                raise ParameterError(f"layer {name!r} gave {rows.shape[0]} rows for {n_sounds} sounds: its calls do "
                                     f"not split into the same number of rows per sound")
            out[name] = rows.reshape(n_sounds, rows.shape[0] // n_sounds, -1).mean(axis=1, dtype=np.float64
                                                                                   ).astype(np.float32)
            parts.clear()
        return out


# ----------------------------------------------------------------------------- embedding
@dataclasses.dataclass
class LayeredRun:
    """What :func:`embed_layers` did.

    Attributes
    ----------
    embedding : gear.embedder.EmbeddingRun
        The model's scene embeddings (the ``MODEL`` result, as a plain run gives).
    layers : dict of str -> gear.embedder.EmbeddingRun
        Each layer's pooled embeddings, in depth order.
    notes : dict of str -> str
        How each layer was pooled.
    calls_per_batch : list of dict
        For each batch computed here, the forward calls of each layer.
    """

    embedding: object
    layers: Dict[str, object]
    notes: Dict[str, str]
    calls_per_batch: List[Dict[str, int]]


def _layer_run(name: str, array: np.ndarray, n_embedded: int):
    from gear.embedder import EmbeddingRun, constant_embedding

    if constant_embedding(array):
        note = f"{name}: every tone gets (nearly) the same output from this layer"
        return EmbeddingRun(array, n_embedded, ["constant-embedding"], [note])
    return EmbeddingRun(array, n_embedded, [], [])


def _read_note(cache) -> str:
    try:
        return json.loads((cache.dir / _LAYER_FILE).read_text())["pooling"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def embed_layers(spec, tone_set, layers: Sequence[str], *, models_dir=None, cache_dir=None, use_cache: bool = True,
                 batch_size: int = 250, max_dim: Optional[int] = None, progress=None) -> LayeredRun:
    """Scene embeddings of a registered model and the pooled output of ``layers``, from one forward
    pass per batch, resumable through the caches (a batch is recomputed when any of them lacks it).

    Parameters
    ----------
    spec : embeddings.base.ModelSpec
    tone_set : synth.ToneSet or synth.families.StimulusSet
    layers : sequence of str
        From :func:`select_layers`.
    max_dim : int, optional
        Size limit of the embedding and of each pooled layer (default
        :data:`gear.embedder.DEFAULT_MAX_DIM`).
    progress : callable(iterable, total) -> iterable, optional
    """
    from gear.embedder import (DEFAULT_MAX_DIM, EmbeddingRun, batches, check_determinism, check_size,
                               constant_embedding, model_cache)
    from gear.validate import Padding, call_scene_embeddings, render_tones

    max_dim = DEFAULT_MAX_DIM if max_dim is None else int(max_dim)
    caches = {}
    if use_cache:
        caches[None] = model_cache(spec, tone_set, models_dir=models_dir, cache_dir=cache_dir)
        for name in layers:
            caches[name] = model_cache(spec, tone_set, models_dir=models_dir, cache_dir=cache_dir, layer=name,
                                       layer_pooling=POOLING_VERSION, max_dim=max_dim)
    keys = [None, *layers]
    arrays: Dict[Optional[str], np.ndarray] = {}

    def put(key, start, array):
        if key not in arrays:  # allocated once its width is known (no concatenation: one copy in memory)
            arrays[key] = np.empty((tone_set.n_sounds, array.shape[1]), dtype=np.float32)
        arrays[key][start:start + array.shape[0]] = array

    plan = batches(tone_set.n_sounds, batch_size)
    todo = []
    for start, stop in plan:
        loaded = {k: caches[k].load(start, stop) if caches else None for k in keys}
        if all(a is not None and a.dtype == np.float32 and a.ndim == 2 for a in loaded.values()):
            for k in keys:
                put(k, start, loaded[k])
        else:
            todo.append((start, stop))
    notes = {name: _read_note(caches[name]) if caches else "" for name in layers}
    calls: List[Dict[str, int]] = []
    if todo:
        with lower_layer_errors():
            module, model = spec.load(models_dir)
        check_size(model.scene_embedding_size, max_dim=max_dim, module_name=spec.name)
        rate = int(model.sample_rate)
        n = tone_set.n_samples(rate)
        padding = Padding.to_length(rate, n, n, "the native tone length")
        check_determinism(module, model, tone_set, padding, module_name=spec.name)
        stream = progress(todo, total=len(todo)) if progress is not None else todo
        with LayerRecorder(layer_modules(model, layers, model_name=spec.name), max_dim=max_dim) as recorder:
            for start, stop in stream:
                before = dict(recorder.calls)
                audio = render_tones(tone_set, padding, indices=np.arange(start, stop))
                batch = {None: call_scene_embeddings(module, model, audio, module_name=spec.name)}
                batch.update(recorder.take(stop - start))
                calls.append({k: recorder.calls[k] - before[k] for k in layers})
                for k in keys:
                    put(k, start, batch[k])
                    if caches:
                        caches[k].store(start, stop, batch[k])
        notes.update(recorder.notes)
        for name in layers if caches else ():
            atomic_write_text(caches[name].dir / _LAYER_FILE, json.dumps({"layer": name, "pooling": notes[name]}))
    main = arrays.pop(None)
    flags = ["constant-embedding"] if constant_embedding(main) else []
    run = EmbeddingRun(main, len(todo), flags, [f"{spec.name}: every tone gets (nearly) the same embedding"] * len(flags))
    return LayeredRun(run, {k: _layer_run(f"{spec.name}/{k}", v, len(todo)) for k, v in arrays.items()}, notes, calls)


# ----------------------------------------------------------------------------- entries
def layer_entries(store, spec, config, tone_set, layers: Sequence[str], *, models_dir=None, cache_dir=None,
                  use_cache: bool = True, progress=None, max_dim: Optional[int] = None, client=None) -> list:
    """Embed ``spec`` with ``layers`` probed and stage the entries ``MODEL`` and ``MODEL/LAYER``
    whose stored analysis is not current (:func:`gear.pipeline.stage_embedding`).

    With a Dask ``client`` the embedding pass (hooks and all) is one task on a worker
    (:func:`gear.distributed.embed_layers_on`) and each entry's analysis is a task of its own."""
    from gear.pipeline import stage_embedding
    from gear.store import layer_name

    options = dict(models_dir=models_dir, cache_dir=cache_dir, use_cache=use_cache, batch_size=config.batch_size,
                   max_dim=max_dim)
    if client is None:
        wrapper = progress(f"embedding {spec.name} (+{len(layers)} layers)") if progress is not None else None
        run = embed_layers(spec, tone_set, layers, progress=wrapper, **options)
    else:
        from gear.distributed import embed_layers_on

        run = embed_layers_on(client, spec, tone_set, layers, **options)
    staged = [stage_embedding(store, spec, spec.name, run.embedding, config, tone_set, models_dir=models_dir,
                              client=client)]
    depths = layer_depths(spec, spec.layer_names(models_dir))
    for layer, layer_run in run.layers.items():
        staged.append(stage_embedding(
            store, spec, layer_name(spec.name, layer), layer_run, config, tone_set, models_dir=models_dir,
            client=client, layer={"layer": layer, **depths[layer], "pooling": run.notes[layer]}))
    return [s for s in staged if s is not None]


# ----------------------------------------------------------------------------- report
def layers_section(results, infos) -> list:
    """``[("Layer-wise probes", html)]`` when ``results`` hold layer entries, else ``[]``: per factor,
    the normalised score against layer depth, one line per model."""
    from gear import html as gear_html

    curves = _curves(results, infos)
    if not curves:
        return []
    factors = []
    for points in curves.values():
        for point in points:
            factors += [f for f in point["normalised"] if f not in factors]
    figure = _depth_figure(curves, factors)
    rows = [{"model": model, "layer": p["layer"], "depth": p["depth"], "dim": p["dim"], "pooling": p["pooling"],
             **{f"normalised_{f}": p["normalised"].get(f, np.nan) for f in factors}}
            for model, points in curves.items() for p in points]
    columns = ["model", "layer", "depth", "dim"] + [f"normalised_{f}" for f in factors] + ["pooling"]
    table = gear_html.table(columns, rows, css_class="gear-layers")
    return [("Layer-wise probes", gear_html.render("layers.html", figure=gear_html.Markup(figure),
                                                   table=gear_html.Markup(table)))]


def _curves(results, infos) -> Dict[str, List[dict]]:
    """``{model: [point per layer, by depth]}`` from the stored layer entries."""
    from gear.store import split_layer

    curves: Dict[str, List[dict]] = {}
    for result in results:
        model, layer = split_layer(result.name)
        info = infos.get(result.name)
        meta = (info.manifest.get("provenance") or {}).get("layer") if info is not None else None
        if layer is None or not isinstance(meta, dict):
            continue
        branch = str(meta.get("branch") or "")
        curves.setdefault(f"{model} ({branch})" if branch else model, []).append({
            "layer": layer, "depth": int(meta.get("depth", 0)), "n_layers": int(meta.get("n_layers", 0)),
            "pooling": str(meta.get("pooling", "")), "dim": result.embedding_dim,
            "normalised": {k: float(v) for k, v in result.normalised.items()}})
    return {model: sorted(points, key=lambda p: p["depth"]) for model, points in sorted(curves.items())}


def _depth_figure(curves: Dict[str, List[dict]], factors: Sequence[str]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from plotly.colors import qualitative

    from gear.report import figure_fragment

    colours = qualitative.Safe
    fig = make_subplots(rows=1, cols=len(factors), shared_yaxes=True,
                        subplot_titles=[("mean over the causes" if f == "mean" else f) for f in factors])
    for i, (model, points) in enumerate(curves.items()):
        for col, factor in enumerate(factors, start=1):
            fig.add_trace(go.Scatter(
                x=[p["depth"] for p in points], y=[p["normalised"].get(factor, np.nan) for p in points],
                mode="lines+markers", name=model, legendgroup=model, showlegend=col == 1,
                text=[p["layer"] for p in points],
                hovertemplate=f"{model}/%{{text}}<br>depth %{{x}}<br>normalised %{{y:.3f}}<extra></extra>",
                line=dict(color=colours[i % len(colours)])), row=1, col=col)
    for col in range(1, len(factors) + 1):
        fig.add_hline(y=1.0, line=dict(dash="dot", color="#888"), row=1, col=col)
        fig.add_hline(y=0.0, line=dict(dash="dash", color="#888"), row=1, col=col)
        fig.update_xaxes(title_text="layer depth (1 = nearest the audio)", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="normalised score (0 oracle, 1 chance)", row=1, col=1)
    fig.update_layout(height=380, margin=dict(l=60, r=20, t=40, b=50))
    return figure_fragment(fig, height=380)

