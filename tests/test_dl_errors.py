"""Bad input to every deep-learning operation and optimiser (SPEC §7): a
``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
shape, labels or range) whose message names the function, the argument, what
was expected and what came.

One table: each row is the call, the exception class, and the words the
message must hold (the argument's name and what came, e.g. the bad shape).
The rows were written from SPEC §4, §5, §7, §8 and MATLAB's documented
argument rules, before the ops were fixed to pass them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symdl

RNG = np.random.default_rng(7)
X4 = symdl.dlarray(RNG.standard_normal((4, 4, 3, 2)), "SSCB")   # 4x4 images, 3 channels, 2 observations
XCB = symdl.dlarray(RNG.standard_normal((3, 2)), "CB")
ONES3 = np.ones(3)
INF, NAN = float("inf"), float("nan")


def P():
    return {"w": symdl.dlarray(np.ones((2, 3))), "b": [symdl.dlarray(np.ones(2))]}


def G():
    return {"w": symdl.dlarray(np.ones((2, 3))), "b": [symdl.dlarray(np.ones(2))]}


def with_shape(tree_fn, key, shape):
    t = tree_fn()
    t[key] = symdl.dlarray(np.ones(shape))
    return t


def pooled():
    return symdl.maxpool(symdl.dlarray(np.arange(16.0).reshape(4, 4), "SS"), 2, stride=2, return_indices=True)


# (id, call, exception, regex fragments that must all appear in the message)
CASES = [
    # ------------------------------------------------------------ activations
    ("relu-string", lambda: symdl.relu("abc"), TypeError, ["relu", "X", "str"]),
    ("relu-none", lambda: symdl.relu(None), TypeError, ["relu", "X", "NoneType"]),
    ("relu-complex", lambda: symdl.relu(np.array([1j])), TypeError, ["relu", "X", "complex"]),
    ("leakyrelu-scale-type", lambda: symdl.leakyrelu(XCB, "big"), TypeError, ["leakyrelu", "scale", "'big'"]),
    ("leakyrelu-scale-nan", lambda: symdl.leakyrelu(XCB, NAN), ValueError, ["leakyrelu", "scale", "finite", "nan"]),
    ("leakyrelu-scale-inf", lambda: symdl.leakyrelu(XCB, INF), ValueError, ["leakyrelu", "scale", "finite", "inf"]),
    ("leakyrelu-x", lambda: symdl.leakyrelu([[1, "a"]]), TypeError, ["leakyrelu", "X"]),
    ("elu-alpha-negative", lambda: symdl.elu(XCB, -1.0), ValueError, ["elu", "alpha", "positive", "-1.0"]),
    ("elu-alpha-nan", lambda: symdl.elu(XCB, NAN), ValueError, ["elu", "alpha", "nan"]),
    ("elu-alpha-inf", lambda: symdl.elu(XCB, INF), ValueError, ["elu", "alpha", "finite", "inf"]),
    ("elu-alpha-type", lambda: symdl.elu(XCB, [1.0]), TypeError, ["elu", "alpha", r"\[1.0\]"]),
    ("gelu-approximation", lambda: symdl.gelu(XCB, "erf"), ValueError, ["gelu", "approximation", "'tanh'", "'erf'"]),
    ("gelu-approximation-type", lambda: symdl.gelu(XCB, 1), TypeError, ["gelu", "approximation", "1"]),
    ("gelu-x", lambda: symdl.gelu({"a": 1}), TypeError, ["gelu", "X", "dict"]),
    ("softmax-no-channel", lambda: symdl.softmax(symdl.dlarray(np.ones((2, 3)), "SB")), ValueError,
     ["softmax", "'C'", "'SB'"]),
    ("softmax-unformatted", lambda: symdl.softmax(symdl.dlarray(np.ones((2, 3)))), ValueError,
     ["softmax", "'C'", "None"]),
    ("softmax-dim-range", lambda: symdl.softmax(XCB, dim=5), ValueError, ["softmax", "dim", "5"]),
    ("softmax-dim-letter", lambda: symdl.softmax(XCB, dim="Q"), ValueError, ["softmax", "dim", "'Q'"]),
    ("softmax-dim-absent", lambda: symdl.softmax(XCB, dim="T"), ValueError, ["softmax", "dim", "'T'", "'CB'"]),
    ("softmax-dim-bool", lambda: symdl.softmax(XCB, dim=True), TypeError, ["softmax", "dim", "True"]),
    ("softmax-dim-float", lambda: symdl.softmax(XCB, dim=0.5), TypeError, ["softmax", "dim", "0.5"]),
    ("softmax-x", lambda: symdl.softmax("x"), TypeError, ["softmax", "X", "str"]),
    # ------------------------------------------------------------ losses
    ("crossentropy-shape", lambda: symdl.crossentropy(XCB, np.ones((2, 3))), ValueError,
     ["crossentropy", "targets", r"\(3, 2\)", r"\(2, 3\)"]),
    ("crossentropy-fmt", lambda: symdl.crossentropy(XCB, symdl.dlarray(np.ones((3, 2)), "CT")), ValueError,
     ["crossentropy", "targets", "'CB'", "'CT'"]),
    ("crossentropy-y-type", lambda: symdl.crossentropy([[0.5]], np.ones((1, 1))), TypeError,
     ["crossentropy", "Y", "list"]),
    ("crossentropy-targets-type", lambda: symdl.crossentropy(XCB, "labels"), TypeError,
     ["crossentropy", "targets", "str"]),
    ("crossentropy-normalization", lambda: symdl.crossentropy(XCB, np.ones((3, 2)), normalization="mean"),
     ValueError, ["crossentropy", "normalization", "'mean'"]),
    ("crossentropy-unformatted", lambda: symdl.crossentropy(symdl.dlarray(np.ones((3, 2))), np.ones((3, 2))),
     ValueError, ["crossentropy", "Y", "format", "'B'"]),
    ("mse-shape", lambda: symdl.mse(XCB, np.ones(6)), ValueError, ["mse", "targets", r"\(3, 2\)", r"\(6,\)"]),
    ("mse-broadcast", lambda: symdl.mse(XCB, np.ones((3, 1))), ValueError, ["mse", "targets", r"\(3, 1\)"]),
    ("mse-targets-none", lambda: symdl.mse(XCB, None), TypeError, ["mse", "targets", "NoneType"]),
    ("l1loss-shape", lambda: symdl.l1loss(XCB, np.ones((2, 3))), ValueError, ["l1loss", "targets", r"\(2, 3\)"]),
    ("l1loss-normalization", lambda: symdl.l1loss(XCB, np.ones((3, 2)), normalization=3), TypeError,
     ["l1loss", "normalization", "3"]),
    ("l2loss-shape", lambda: symdl.l2loss(XCB, np.ones((3, 3))), ValueError, ["l2loss", "targets", r"\(3, 3\)"]),
    ("l2loss-y-type", lambda: symdl.l2loss(np.ones((3, 2)), np.ones((3, 2))), TypeError, ["l2loss", "Y", "ndarray"]),
    ("huber-shape", lambda: symdl.huber(XCB, np.ones((3,))), ValueError, ["huber", "targets", r"\(3,\)"]),
    ("huber-delta-negative", lambda: symdl.huber(XCB, np.ones((3, 2)), -1.0), ValueError,
     ["huber", "transition_point", "positive", "-1.0"]),
    ("huber-delta-nan", lambda: symdl.huber(XCB, np.ones((3, 2)), NAN), ValueError,
     ["huber", "transition_point", "nan"]),
    ("huber-delta-inf", lambda: symdl.huber(XCB, np.ones((3, 2)), INF), ValueError,
     ["huber", "transition_point", "finite", "inf"]),
    ("huber-delta-type", lambda: symdl.huber(XCB, np.ones((3, 2)), "1"), TypeError,
     ["huber", "transition_point", "'1'"]),
    ("onehotencode-2d", lambda: symdl.onehotencode(np.ones((2, 2))), ValueError,
     ["onehotencode", "labels", "1-D", r"\(2, 2\)"]),
    ("onehotencode-unknown", lambda: symdl.onehotencode([1, 5], classes=[0, 1, 2]), ValueError,
     ["onehotencode", "labels", r"\[5\]", "classes"]),
    ("onehotencode-duplicate-classes", lambda: symdl.onehotencode([1], classes=[0, 1, 1]), ValueError,
     ["onehotencode", "classes", "distinct"]),
    ("onehotencode-fmt-letter", lambda: symdl.onehotencode([0, 1], fmt="CX"), ValueError,
     ["onehotencode", "fmt", "'CX'"]),
    ("onehotencode-fmt-duplicate", lambda: symdl.onehotencode([0, 1], fmt="CC"), ValueError,
     ["onehotencode", "fmt", "'CC'"]),
    ("onehotencode-fmt-length", lambda: symdl.onehotencode([0, 1], fmt="SCB"), ValueError,
     ["onehotencode", "fmt", "'SCB'", "2"]),
    ("onehotencode-fmt-type", lambda: symdl.onehotencode([0, 1], fmt=2), TypeError, ["onehotencode", "fmt", "int"]),
    ("onehotencode-dtype", lambda: symdl.onehotencode([0, 1], dtype="int8"), ValueError,
     ["onehotencode", "dtype", "float32", "int8"]),
    ("onehotdecode-classes", lambda: symdl.onehotdecode(XCB, ["a", "b"]), ValueError,
     ["onehotdecode", "classes", "3", "2"]),
    ("onehotdecode-dim-letter", lambda: symdl.onehotdecode(XCB, ["a", "b", "c"], dim="Z"), ValueError,
     ["onehotdecode", "dim", "'Z'"]),
    ("onehotdecode-dim-range", lambda: symdl.onehotdecode(XCB, ["a", "b", "c"], dim=4), ValueError,
     ["onehotdecode", "dim", "4"]),
    ("onehotdecode-dim-type", lambda: symdl.onehotdecode(XCB, ["a", "b", "c"], dim=1.0), TypeError,
     ["onehotdecode", "dim", "1.0"]),
    ("onehotdecode-y-type", lambda: symdl.onehotdecode("Y", ["a"], dim=0), TypeError, ["onehotdecode", "Y", "str"]),
    # ------------------------------------------------------------ fullyconnect
    ("fullyconnect-weights-shape", lambda: symdl.fullyconnect(X4, np.ones((5, 47)), np.ones(5)), ValueError,
     ["fullyconnect", "weights", "48", r"\(5, 47\)"]),
    ("fullyconnect-weights-1d", lambda: symdl.fullyconnect(XCB, np.ones(3), np.ones(1)), ValueError,
     ["fullyconnect", "weights", r"\(3,\)"]),
    ("fullyconnect-bias-shape", lambda: symdl.fullyconnect(XCB, np.ones((4, 3)), np.ones(3)), ValueError,
     ["fullyconnect", "bias", r"\(4,\)", r"\(3,\)"]),
    ("fullyconnect-bias-row", lambda: symdl.fullyconnect(XCB, np.ones((4, 3)), np.ones((1, 4))), ValueError,
     ["fullyconnect", "bias", r"\(1, 4\)"]),
    ("fullyconnect-unformatted", lambda: symdl.fullyconnect(symdl.dlarray(np.ones((3, 2))), np.ones((4, 3)),
                                                            np.ones(4)), ValueError, ["fullyconnect", "X", "format"]),
    ("fullyconnect-x-type", lambda: symdl.fullyconnect(np.ones((3, 2)), np.ones((4, 3)), np.ones(4)), TypeError,
     ["fullyconnect", "X", "ndarray"]),
    ("fullyconnect-weights-type", lambda: symdl.fullyconnect(XCB, "W", np.ones(4)), TypeError,
     ["fullyconnect", "weights", "str"]),
    ("fullyconnect-bias-type", lambda: symdl.fullyconnect(XCB, np.ones((4, 3)), None), TypeError,
     ["fullyconnect", "bias", "NoneType"]),
    # ------------------------------------------------------------ normalisation
    ("batchnorm-offset", lambda: symdl.batchnorm(X4, np.zeros(4), ONES3), ValueError,
     ["batchnorm", "offset", "3", r"\(4,\)"]),
    ("batchnorm-scale", lambda: symdl.batchnorm(X4, np.zeros(3), np.ones((2, 2))), ValueError,
     ["batchnorm", "scale", "3", r"\(2, 2\)"]),
    ("batchnorm-running-mean", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(2), ONES3), ValueError,
     ["batchnorm", "running_mean", "3", r"\(2,\)"]),
    ("batchnorm-running-var", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(3), ONES3[:1],
                                                      training=True),
     ValueError, ["batchnorm", "running_var", r"\(1,\)"]),
    ("batchnorm-half-state", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(3)), ValueError,
     ["batchnorm", "running_mean", "running_var"]),
    ("batchnorm-inference-no-state", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, training=False), ValueError,
     ["batchnorm", "training=False", "running_mean"]),
    ("batchnorm-training-type", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(3), ONES3, training="yes"),
     TypeError, ["batchnorm", "training", "'yes'"]),
    ("batchnorm-epsilon-negative", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, epsilon=-1e-5), ValueError,
     ["batchnorm", "epsilon", "-1e-05"]),
    ("batchnorm-epsilon-nan", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, epsilon=NAN), ValueError,
     ["batchnorm", "epsilon", "nan"]),
    ("batchnorm-epsilon-type", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, epsilon="small"), TypeError,
     ["batchnorm", "epsilon", "'small'"]),
    ("batchnorm-decay", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(3), ONES3, training=True,
                                                mean_decay=1.5), ValueError, ["batchnorm", "mean_decay", "1.5"]),
    ("batchnorm-var-decay-nan", lambda: symdl.batchnorm(X4, np.zeros(3), ONES3, np.zeros(3), ONES3, training=True,
                                                        var_decay=NAN), ValueError, ["batchnorm", "var_decay", "nan"]),
    ("batchnorm-no-channel", lambda: symdl.batchnorm(symdl.dlarray(np.ones((4, 2)), "SB"), [0.0], [1.0]),
     ValueError, ["batchnorm", "X", "'C'", "'SB'"]),
    ("batchnorm-x-type", lambda: symdl.batchnorm(np.ones((3, 2)), np.zeros(3), ONES3), TypeError,
     ["batchnorm", "X", "ndarray"]),
    ("batchnorm-offset-type", lambda: symdl.batchnorm(X4, "zero", ONES3), TypeError,
     ["batchnorm", "offset", "str"]),
    ("layernorm-offset", lambda: symdl.layernorm(X4, np.zeros(2), ONES3), ValueError,
     ["layernorm", "offset", "3", r"\(2,\)"]),
    ("layernorm-epsilon", lambda: symdl.layernorm(X4, np.zeros(3), ONES3, epsilon=-1.0), ValueError,
     ["layernorm", "epsilon", "-1.0"]),
    ("layernorm-no-channel", lambda: symdl.layernorm(symdl.dlarray(np.ones((4, 2)), "SB"), [0.0], [1.0]),
     ValueError, ["layernorm", "X", "'C'"]),
    ("groupnorm-groups", lambda: symdl.groupnorm(X4, 2, np.zeros(3), ONES3), ValueError,
     ["groupnorm", "num_groups", "3", "2"]),
    ("groupnorm-groups-type", lambda: symdl.groupnorm(X4, 1.0, np.zeros(3), ONES3), TypeError,
     ["groupnorm", "num_groups", "1.0"]),
    ("groupnorm-scale", lambda: symdl.groupnorm(X4, 3, np.zeros(3), np.ones(6)), ValueError,
     ["groupnorm", "scale", r"\(6,\)"]),
    ("groupnorm-epsilon-inf", lambda: symdl.groupnorm(X4, 3, np.zeros(3), ONES3, epsilon=INF), ValueError,
     ["groupnorm", "epsilon", "inf"]),
    ("instancenorm-offset", lambda: symdl.instancenorm(X4, np.zeros(1), ONES3), ValueError,
     ["instancenorm", "offset", r"\(1,\)"]),
    ("instancenorm-no-channel", lambda: symdl.instancenorm(symdl.dlarray(np.ones((4, 2)), "SB"), [0.0], [1.0]),
     ValueError, ["instancenorm", "X", "'C'"]),
    ("crosschannelnorm-window", lambda: symdl.crosschannelnorm(X4, 0), ValueError,
     ["crosschannelnorm", "window_channel_size", "0"]),
    ("crosschannelnorm-window-type", lambda: symdl.crosschannelnorm(X4, 2.5), TypeError,
     ["crosschannelnorm", "window_channel_size", "2.5"]),
    ("crosschannelnorm-alpha-nan", lambda: symdl.crosschannelnorm(X4, 3, alpha=NAN), ValueError,
     ["crosschannelnorm", "alpha", "nan"]),
    ("crosschannelnorm-beta-inf", lambda: symdl.crosschannelnorm(X4, 3, beta=INF), ValueError,
     ["crosschannelnorm", "beta", "inf"]),
    ("crosschannelnorm-k-type", lambda: symdl.crosschannelnorm(X4, 3, k="2"), TypeError,
     ["crosschannelnorm", "k", "'2'"]),
    ("crosschannelnorm-no-channel", lambda: symdl.crosschannelnorm(symdl.dlarray(np.ones((4, 2)), "SB"), 3),
     ValueError, ["crosschannelnorm", "X", "'C'"]),
    # ------------------------------------------------------------ dropout, embed
    ("dropout-probability-one", lambda: symdl.dropout(XCB, 1.0), ValueError, ["dropout", "probability", "1.0"]),
    ("dropout-probability-negative", lambda: symdl.dropout(XCB, -0.1), ValueError,
     ["dropout", "probability", "-0.1"]),
    ("dropout-probability-nan", lambda: symdl.dropout(XCB, NAN), ValueError, ["dropout", "probability", "nan"]),
    ("dropout-probability-type", lambda: symdl.dropout(XCB, "half"), TypeError, ["dropout", "probability", "'half'"]),
    ("dropout-x-type", lambda: symdl.dropout([1.0, 2.0]), TypeError, ["dropout", "X", "list"]),
    ("embed-weights-3d", lambda: symdl.embed(np.array([0, 1]), np.ones((2, 3, 1))), ValueError,
     ["embed", "weights", r"\(2, 3, 1\)"]),
    ("embed-index-range", lambda: symdl.embed(np.array([0, 3]), np.ones((2, 3))), ValueError,
     ["embed", "indices", "0..2", "3"]),
    ("embed-index-negative", lambda: symdl.embed(np.array([-1, 0]), np.ones((2, 3))), ValueError,
     ["embed", "indices", "-1"]),
    ("embed-index-fraction", lambda: symdl.embed(np.array([0.5]), np.ones((2, 3))), ValueError,
     ["embed", "X", "integer"]),
    ("embed-no-batch", lambda: symdl.embed(symdl.dlarray(np.zeros((2, 2)), "ST"), np.ones((2, 3))), ValueError,
     ["embed", "X", "'B'", "'ST'"]),
    ("embed-weights-type", lambda: symdl.embed(np.array([0]), "W"), TypeError, ["embed", "weights", "str"]),
    ("embed-x-type", lambda: symdl.embed("cat", np.ones((2, 3))), TypeError, ["embed", "X", "str"]),
    # ------------------------------------------------------------ pooling
    ("maxpool-too-large", lambda: symdl.maxpool(X4, 5), ValueError, ["maxpool", "pool", r"\(5, 5\)", r"\(4, 4\)"]),
    ("avgpool-too-large", lambda: symdl.avgpool(X4, (2, 6)), ValueError, ["avgpool", "pool", r"\(2, 6\)"]),
    ("maxpool-zero-pool", lambda: symdl.maxpool(X4, 0), ValueError, ["maxpool", "pool_size", "0"]),
    ("maxpool-zero-stride", lambda: symdl.maxpool(X4, 2, stride=0), ValueError, ["maxpool", "stride", "0"]),
    ("maxpool-pool-length", lambda: symdl.maxpool(X4, (2, 2, 2)), ValueError,
     ["maxpool", "pool_size", "2 ints", r"\(2, 2, 2\)"]),
    ("maxpool-pool-float", lambda: symdl.maxpool(X4, 2.0), TypeError, ["maxpool", "pool_size", "2.0"]),
    ("maxpool-pool-type", lambda: symdl.maxpool(X4, "2"), TypeError, ["maxpool", "pool_size", "'2'"]),
    ("avgpool-negative-padding", lambda: symdl.avgpool(X4, 2, padding=-1), ValueError,
     ["avgpool", "padding", "non-negative", "-1"]),
    ("avgpool-padding-word", lambda: symdl.avgpool(X4, 2, padding="valid"), ValueError,
     ["avgpool", "padding", "'same'", "'valid'"]),
    ("avgpool-padding-pairs", lambda: symdl.avgpool(X4, 2, padding=[(1, 1)]), ValueError,
     ["avgpool", "padding", "2"]),
    ("maxpool-unformatted", lambda: symdl.maxpool(symdl.dlarray(np.ones((4, 4))), 2), ValueError,
     ["maxpool", "X", "'S'", "None"]),
    ("maxpool-no-spatial", lambda: symdl.maxpool(XCB, 2), ValueError, ["maxpool", "X", "'S'", "'CB'"]),
    ("maxpool-x-type", lambda: symdl.maxpool(np.ones((4, 4)), 2), TypeError, ["maxpool", "X", "ndarray"]),
    ("maxpool-return-indices-type", lambda: symdl.maxpool(X4, 2, return_indices="yes"), TypeError,
     ["maxpool", "return_indices", "'yes'"]),
    ("maxunpool-indices-shape", lambda: symdl.maxunpool(pooled()[0], np.zeros((1, 2), int), (4, 4)), ValueError,
     ["maxunpool", "indices", r"\(2, 2\)", r"\(1, 2\)"]),
    ("maxunpool-indices-float", lambda: symdl.maxunpool(pooled()[0], np.zeros((2, 2)), (4, 4)), ValueError,
     ["maxunpool", "indices", "float64"]),
    ("maxunpool-indices-range", lambda: symdl.maxunpool(pooled()[0], pooled()[1], (2, 2)), ValueError,
     ["maxunpool", "indices", "0..3", "input_size"]),
    ("maxunpool-size-negative", lambda: symdl.maxunpool(pooled()[0], pooled()[1], (4, -4)), ValueError,
     ["maxunpool", "input_size", r"\(4, -4\)"]),
    ("maxunpool-size-type", lambda: symdl.maxunpool(pooled()[0], pooled()[1], "4x4"), TypeError,
     ["maxunpool", "input_size", "'4x4'"]),
    ("maxunpool-y-type", lambda: symdl.maxunpool(np.ones((2, 2)), pooled()[1], (4, 4)), TypeError,
     ["maxunpool", "Y", "ndarray"]),
    # ------------------------------------------------------------ optimisers
    ("sgdm-grad-structure", lambda: symdl.sgdmupdate(P(), [G()["w"], G()["b"][0]]), ValueError,
     ["sgdmupdate", "grad", "structure", "list"]),
    ("sgdm-grad-keys", lambda: symdl.sgdmupdate(P(), {"w": G()["w"], "c": G()["b"]}), ValueError,
     ["sgdmupdate", "grad", "structure", "'c'"]),
    ("sgdm-grad-shape", lambda: symdl.sgdmupdate(P(), with_shape(G, "w", (3, 2))), ValueError,
     ["sgdmupdate", "grad", r"\['w'\]", r"\(3, 2\)", r"\(2, 3\)"]),
    ("sgdm-vel-shape", lambda: symdl.sgdmupdate(P(), G(), with_shape(G, "w", (2, 3, 1))), ValueError,
     ["sgdmupdate", "vel", r"\(2, 3, 1\)"]),
    ("sgdm-vel-structure", lambda: symdl.sgdmupdate(P(), G(), [1.0]), ValueError, ["sgdmupdate", "vel", "structure"]),
    ("sgdm-grad-none", lambda: symdl.sgdmupdate(P(), None), TypeError, ["sgdmupdate", "grad", "None"]),
    ("sgdm-grad-leaf-type", lambda: symdl.sgdmupdate(symdl.dlarray([1.0]), "g"), TypeError,
     ["sgdmupdate", "grad", "str"]),
    ("sgdm-params-leaf-type", lambda: symdl.sgdmupdate({"w": "p"}, {"w": 1.0}), TypeError,
     ["sgdmupdate", "params", "str"]),
    ("sgdm-learn-rate-negative", lambda: symdl.sgdmupdate(P(), G(), learn_rate=-0.1), ValueError,
     ["sgdmupdate", "learn_rate", "-0.1"]),
    ("sgdm-learn-rate-inf", lambda: symdl.sgdmupdate(P(), G(), learn_rate=INF), ValueError,
     ["sgdmupdate", "learn_rate", "inf"]),
    ("sgdm-learn-rate-type", lambda: symdl.sgdmupdate(P(), G(), learn_rate="fast"), TypeError,
     ["sgdmupdate", "learn_rate", "'fast'"]),
    ("sgdm-momentum", lambda: symdl.sgdmupdate(P(), G(), momentum=1.5), ValueError, ["sgdmupdate", "momentum", "1.5"]),
    ("sgdm-momentum-nan", lambda: symdl.sgdmupdate(P(), G(), momentum=NAN), ValueError,
     ["sgdmupdate", "momentum", "nan"]),
    ("adam-grad-shape", lambda: symdl.adamupdate(P(), with_shape(G, "w", (6,)), None, None, 1), ValueError,
     ["adamupdate", "grad", r"\(6,\)", r"\(2, 3\)"]),
    ("adam-avg-g-shape", lambda: symdl.adamupdate(P(), G(), with_shape(G, "w", (1, 3)), None, 1), ValueError,
     ["adamupdate", "avg_g", r"\(1, 3\)"]),
    ("adam-avg-sq-g-structure", lambda: symdl.adamupdate(P(), G(), None, {"w": G()["w"]}, 1), ValueError,
     ["adamupdate", "avg_sq_g", "structure"]),
    ("adam-iteration-zero", lambda: symdl.adamupdate(P(), G(), None, None, 0), ValueError,
     ["adamupdate", "iteration", "positive", "0"]),
    ("adam-iteration-float", lambda: symdl.adamupdate(P(), G(), None, None, 1.5), TypeError,
     ["adamupdate", "iteration", "1.5"]),
    ("adam-learn-rate-nan", lambda: symdl.adamupdate(P(), G(), None, None, 1, learn_rate=NAN), ValueError,
     ["adamupdate", "learn_rate", "nan"]),
    ("adam-grad-decay", lambda: symdl.adamupdate(P(), G(), None, None, 1, grad_decay=1.0), ValueError,
     ["adamupdate", "grad_decay", "1.0"]),
    ("adam-sq-grad-decay", lambda: symdl.adamupdate(P(), G(), None, None, 1, sq_grad_decay=-0.5), ValueError,
     ["adamupdate", "sq_grad_decay", "-0.5"]),
    ("adam-epsilon", lambda: symdl.adamupdate(P(), G(), None, None, 1, epsilon=0.0), ValueError,
     ["adamupdate", "epsilon", "0.0"]),
    ("adam-epsilon-type", lambda: symdl.adamupdate(P(), G(), None, None, 1, epsilon=None), TypeError,
     ["adamupdate", "epsilon", "None"]),
    ("rmsprop-avg-sq-g-shape", lambda: symdl.rmspropupdate(P(), G(), with_shape(G, "w", (2, 2))), ValueError,
     ["rmspropupdate", "avg_sq_g", r"\(2, 2\)"]),
    ("rmsprop-decay", lambda: symdl.rmspropupdate(P(), G(), None, sq_grad_decay=1.5), ValueError,
     ["rmspropupdate", "sq_grad_decay", "1.5"]),
    ("rmsprop-epsilon-negative", lambda: symdl.rmspropupdate(P(), G(), None, epsilon=-1e-8), ValueError,
     ["rmspropupdate", "epsilon", "-1e-08"]),
    ("rmsprop-learn-rate-inf", lambda: symdl.rmspropupdate(P(), G(), None, learn_rate=INF), ValueError,
     ["rmspropupdate", "learn_rate", "inf"]),
    ("dlupdate-fun", lambda: symdl.dlupdate("sgd", P()), TypeError, ["dlupdate", "fun", "str"]),
    ("dlupdate-structure", lambda: symdl.dlupdate(lambda p, g: p, P(), [1.0]), ValueError,
     ["dlupdate", "argument 2", "structure"]),
    ("dlupdate-shape", lambda: symdl.dlupdate(lambda p, g: p, P(), with_shape(G, "w", (3,))), ValueError,
     ["dlupdate", "argument 2", r"\(3,\)"]),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(call, error, words):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    message = str(info.value)
    assert type(info.value) is error, f"{type(info.value).__name__} (expected {error.__name__}): {message}"
    for word in words:
        assert re.search(word, message), f"the message does not name {word!r}: {message}"


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_op_and_optimiser_has_a_row():
    named = {c[0].split("-")[0] for c in CASES}
    ops = {"relu", "leakyrelu", "elu", "gelu", "softmax", "crossentropy", "mse", "l1loss", "l2loss", "huber",
           "onehotencode", "onehotdecode", "fullyconnect", "batchnorm", "layernorm", "groupnorm", "instancenorm",
           "crosschannelnorm", "dropout", "embed", "maxpool", "avgpool", "maxunpool",
           "sgdm", "adam", "rmsprop", "dlupdate"}
    assert ops <= named, ops - named


def test_good_input_next_to_the_bad_still_works():
    # the checks reject only what is wrong: the neighbouring good calls pass
    Y, mu, var = symdl.batchnorm(X4, np.zeros((1, 1, 3)), ONES3.reshape(3, 1))
    assert Y.shape == X4.shape and mu.shape == (3, 1)
    assert symdl.fullyconnect(XCB, np.ones((4, 3)), np.ones((4, 1))).shape == (4, 2)
    assert symdl.maxpool(X4, 4).shape == (1, 1, 3, 2)                  # pool == input is fine
    assert symdl.maxpool(X4, 5, padding=1).shape == (2, 2, 3, 2)       # larger than X, not than padded X
    assert float(symdl.leakyrelu(symdl.dlarray(-1.0), -0.5)) == 0.5    # any finite scale, as MATLAB
    assert symdl.dropout(XCB, 0.0) is XCB
    p, v = symdl.sgdmupdate(P(), G(), None, learn_rate=0.0, momentum=0.0)
    np.testing.assert_array_equal(symdl.extractdata(p["w"]), np.ones((2, 3)))
    p, m, s = symdl.adamupdate(P(), G(), None, None, np.int64(2), grad_decay=0.0, sq_grad_decay=0.0)
    assert p["b"][0].shape == (2,)
    assert symdl.onehotencode([2, 0], classes=[0, 1, 2], fmt="CB", dtype="float32").dtype == np.float32
    # labels 'BC' put the classes along the second axis given, then the canonical order is 'CB'
    bc = symdl.onehotencode([2, 0], classes=[0, 1, 2], fmt="BC")
    np.testing.assert_array_equal(symdl.extractdata(bc), symdl.extractdata(symdl.onehotencode([2, 0], [0, 1, 2])))
    # numpy weights are data: a float32 X keeps the computation in float32
    x32 = symdl.dlarray(np.ones((3, 2), np.float32), "CB")
    assert symdl.fullyconnect(x32, np.ones((4, 3)), np.zeros(4)).dtype == np.float32
    assert symdl.mse(x32, np.zeros((3, 2))).dtype == np.float32
