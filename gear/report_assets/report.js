/* GEAR report: draws the embedded figures and plays the embedded tones (no network). */
(function () {
  "use strict";

  var TYPES = {
    f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array,
    i2: Int16Array, u2: Uint16Array, i1: Int8Array, u1: Uint8Array
  };

  function base64Bytes(text) {
    var binary = atob(text.replace(/\s+/g, ""));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function decodeTyped(spec) {
    var Type = TYPES[spec.dtype];
    if (!Type) throw new Error("GEAR report: unknown dtype " + spec.dtype);
    var bytes = base64Bytes(spec.bdata);
    return new Type(bytes.buffer, 0, bytes.byteLength / Type.BYTES_PER_ELEMENT);
  }

  var data = JSON.parse(document.getElementById("gear-data").textContent);
  var params = {};
  Object.keys(data.parameters).forEach(function (key) {
    params[key] = decodeTyped(data.parameters[key]);
  });
  // The page's rows: every tone, or the plotted subsample (data.subsample.rows) of a large set.
  var n = params.index.length;
  var hasBins = Object.prototype.hasOwnProperty.call(params, "f1_bins");

  // A stimulus family's factors (absent for the harmonic tones); a discrete factor's column
  // holds the position of the value in factor.values.
  var factors = data.factors || null;
  function factorValue(factor, row) {
    var value = params[factor.name][row];
    if (factor.values) return factor.values[value];
    return Number(value.toPrecision(4));
  }
  // One customdata table for all the 3-D traces: [index, f1_hz, alpha, r, f1_bins], or
  // [index, factor 1, factor 2, ...] for a stimulus family.
  var customdata = new Array(n);
  for (var i = 0; i < n; i++) {
    if (factors) {
      customdata[i] = [params.index[i]].concat(factors.map(function (f) { return factorValue(f, i); }));
    } else {
      customdata[i] = [params.index[i], params.f1_hz[i], params.alpha[i], params.r[i],
                       hasBins ? params.f1_bins[i] : null];
    }
  }
  var colours = {};
  data.colour_options.forEach(function (option) {
    colours[option.key] = Array.prototype.slice.call(params[option.key]);
  });

  var config = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["sendDataToCloud", "editInChartStudio"],
    toImageButtonOptions: { format: "png", scale: 2 }
  };

  var report = {
    data: data,
    params: params,
    plays: [],
    ready: false,
    errors: [],
    colourKey: data.colour_options[0].key,
    samples: samples,
    play: play,
    setColour: setColour
  };
  window.gearReport = report;

  // ------------------------------------------------------------------ audio
  var pcmBytes = null;
  var context = null;
  var gain = null;
  var current = null;
  var lastPlayed = null;
  var volumeInput = document.getElementById("gear-volume");
  var nowPlaying = document.getElementById("gear-now");
  var replay = document.getElementById("gear-replay");
  var player = document.getElementById("gear-player");

  // Rows 0 .. audioRows - 1 of the page can play (all of them unless the PCM was cut to a budget).
  var audioRows = !data.audio ? 0 : (data.audio.n_rows === undefined ? n : data.audio.n_rows);

  // Eq. 1 of the GEAR paper as synth.harmonic_tones renders it: partials p = 1..P below
  // Nyquist weighted (1 + (-1)^p r) / p^alpha, a periodic Hann window, scaled to the peak.
  function synthesise(row) {
    var spec = data.audio;
    var length = data.n_samples;
    var rate = data.sample_rate;
    var f1 = params.f1_hz[row], alpha = params.alpha[row], r = params.r[row];
    var sum = new Float64Array(length);
    for (var p = 1; p <= spec.n_partials && p * f1 < rate / 2; p++) {
      var amplitude = (1 + (p % 2 === 0 ? r : -r)) / Math.pow(p, alpha);
      if (amplitude === 0) continue;
      var step = 2 * Math.PI * p * f1;
      for (var k = 0; k < length; k++) sum[k] += amplitude * Math.cos(step * (k / rate));
    }
    var peak = 0;
    for (var j = 0; j < length; j++) {
      sum[j] *= 0.5 - 0.5 * Math.cos(2 * Math.PI * j / length);
      peak = Math.max(peak, Math.abs(sum[j]));
    }
    var out = new Float32Array(length);
    if (peak > 0) for (var m = 0; m < length; m++) out[m] = sum[m] * (spec.peak / peak);
    return out;
  }

  function samples(row) {
    if (!data.audio || !(row >= 0 && row < audioRows)) return null;
    if (data.audio.encoding === "eq1") return synthesise(row);
    if (pcmBytes === null) {
      pcmBytes = base64Bytes(document.getElementById(data.audio.element).textContent);
    }
    var length = data.n_samples;
    var view = new DataView(pcmBytes.buffer, row * length * 2, length * 2);
    var out = new Float32Array(length);
    for (var k = 0; k < length; k++) out[k] = view.getInt16(2 * k, true) / data.audio.scale;
    return out;
  }

  function fmt(value, digits) {
    return Number(value).toFixed(digits);
  }

  function describe(row) {
    if (factors) {
      return "sound #" + params.index[row] + factors.map(function (f) {
        return " · " + f.name + " = " + factorValue(f, row) + (f.unit && !f.values ? " " + f.unit : "");
      }).join("");
    }
    var text = "sound #" + params.index[row] + " · f1 = " + fmt(params.f1_hz[row], 1) + " Hz";
    if (hasBins) text += " (bin " + Number(params.f1_bins[row].toPrecision(4)) + ")";
    return text + " · α = " + fmt(params.alpha[row], 3) + " · r = " + fmt(params.r[row], 3);
  }

  function play(row, model) {
    if (!data.audio) {
      nowPlaying.textContent = "Audio is not embedded in this report (" + describe(row) + ").";
      return false;
    }
    if (!(row >= 0 && row < n)) return false;
    if (row >= audioRows) {
      nowPlaying.textContent = "The audio of this tone is not embedded (" + describe(row) + ").";
      return false;
    }
    try {
      if (context === null) {
        var Context = window.AudioContext || window.webkitAudioContext;
        context = new Context();
        gain = context.createGain();
        gain.gain.value = Number(volumeInput.value);
        gain.connect(context.destination);
      }
      if (context.state === "suspended") context.resume();
      var buffer = context.createBuffer(1, data.n_samples, data.sample_rate);
      buffer.getChannelData(0).set(samples(row));
      if (current !== null) {
        try { current.stop(); } catch (ignored) { /* already ended */ }
      }
      var source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(gain);
      source.onended = function () {
        if (current === source) {
          current = null;
          delete document.body.dataset.playing;
          player.classList.remove("playing");
        }
      };
      current = source;
      source.start();
      lastPlayed = { row: row, model: model };
      document.body.dataset.playing = String(row);
      document.body.dataset.lastPlayed = String(row);
      player.classList.add("playing");
      replay.disabled = false;
      report.plays.push({ row: row, index: params.index[row], model: model || null,
                          contextState: context.state });
      nowPlaying.textContent = "▶ " + describe(row) + (model ? "  (" + model + ")" : "");
      return true;
    } catch (error) {
      nowPlaying.textContent = "Could not play the sound: " + error.message;
      console.warn("GEAR report: playback failed", error);
      return false;
    }
  }

  volumeInput.addEventListener("input", function () {
    if (gain !== null) gain.gain.value = Number(volumeInput.value);
  });
  replay.addEventListener("click", function () {
    if (lastPlayed !== null) play(lastPlayed.row, lastPlayed.model);
  });

  // ------------------------------------------------------------------ figures
  var scatterDivs = [];

  function setColour(key) {
    var option = null;
    data.colour_options.forEach(function (o) { if (o.key === key) option = o; });
    if (option === null) return;
    report.colourKey = key;
    scatterDivs.forEach(function (div) {
      var update = {
        "marker.color": [colours[key]],
        "marker.cmin": option.cmin,
        "marker.cmax": option.cmax,
        "marker.colorbar.title.text": option.label
      };
      // A family's options carry their scale (categorical colours for a discrete factor).
      if (option.colorscale) update["marker.colorscale"] = [option.colorscale];
      if (factors) {  // a discrete factor's colour bar names its values
        update["marker.colorbar.tickvals"] = [option.tickvals || null];
        update["marker.colorbar.ticktext"] = [option.ticktext || null];
      }
      Plotly.restyle(div, update, [0]);
    });
    var buttons = document.querySelectorAll(".segmented button");
    Array.prototype.forEach.call(buttons, function (button) {
      button.setAttribute("aria-pressed", button.dataset.key === key ? "true" : "false");
    });
  }

  var pending = [];
  data.models.forEach(function (model) {
    var div = document.getElementById(model.id + "-scatter");
    var figure = model.figure;
    var trace = figure.data[0];
    trace.customdata = customdata;
    trace.marker.color = colours[report.colourKey];
    scatterDivs.push(div);
    try {
      pending.push(Plotly.newPlot(div, figure.data, figure.layout, config).then(function () {
        div.on("plotly_click", function (event) {
          var point = event && event.points && event.points[0];
          if (point) play(point.pointNumber, model.name);
        });
      }));
    } catch (error) {
      report.errors.push(String(error));
      console.error("GEAR report: could not draw " + model.name, error);
    }
  });

  if (data.distributions) {
    var dist = document.getElementById("gear-distributions");
    pending.push(Plotly.newPlot(dist, data.distributions.data, data.distributions.layout, config));
  }

  Array.prototype.forEach.call(document.querySelectorAll(".segmented button"), function (button) {
    button.addEventListener("click", function () { setColour(button.dataset.key); });
  });

  Promise.all(pending).then(function () {
    report.ready = true;
    document.body.dataset.ready = "true";
  }, function (error) {
    report.errors.push(String(error));
    console.error("GEAR report: a figure failed", error);
  });
})();
