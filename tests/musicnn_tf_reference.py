"""musicnn's own TensorFlow graph, run on given input patches: the reference for the PyTorch port.

Runs in the torch-free test venv that holds tensorflow-cpu (``MUSIC_MIXER_TF_PYTHON``, made by
``make test``):

    python tests/musicnn_tf_reference.py PATCHES.npy CHECKPOINT_DIR SCORES.npy [CHECKPOINT_DIR SCORES.npy ...]

(several checkpoints in one run: TensorFlow's import, ~7 CPU-s, is paid once)

The graph is the one musicnn trained and saved (the checkpoint's ``.meta``). TensorFlow 2 cannot
import it as saved (gradient and optimizer nodes carry inconsistent ``_output_shapes``), so only
the inference nodes are kept, ``_output_shapes`` are dropped, and every variable is assigned from
the checkpoint (``../shared/FACTS.md``, musicnn section). Input: float32 (patches, 187, 96)
log-mel patches; output: ``model/Sigmoid``, (patches, 50).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402

DROP_PREFIXES = ("gradients", "save", "Adam", "beta1_power", "beta2_power")


def _dropped(name: str) -> bool:
    return name == "init" or name.startswith(DROP_PREFIXES) or "/Adam" in name


def scores(checkpoint_dir: str, batch: np.ndarray) -> np.ndarray:
    prefix = checkpoint_dir.rstrip("/") + "/"
    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as fh:
        meta.ParseFromString(fh.read())
    graph_def = tf.compat.v1.GraphDef()
    for node in meta.graph_def.node:
        if _dropped(node.name):
            continue
        kept = graph_def.node.add()
        kept.CopyFrom(node)
        del kept.input[:]
        kept.input.extend(i for i in node.input if not _dropped(i.lstrip("^").split(":")[0]))
        if "_output_shapes" in kept.attr:
            del kept.attr["_output_shapes"]
    graph_def.library.CopyFrom(meta.graph_def.library)
    graph_def.versions.CopyFrom(meta.graph_def.versions)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        assigns = []
        for op in graph.get_operations():
            if op.type in ("VariableV2", "Variable"):
                value = reader.get_tensor(op.name)
                assigns.append(tf.compat.v1.assign(op.outputs[0], value))
        one_thread = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        with tf.compat.v1.Session(graph=graph, config=one_thread) as sess:  # the test machine's cores are shared
            sess.run(assigns)
            bools = [op.outputs[0] for op in graph.get_operations() if op.type == "Placeholder" and op.get_attr("dtype") == tf.bool]
            feed = {graph.get_tensor_by_name("model/Placeholder:0"): batch}
            feed.update({b: False for b in bools})
            return sess.run(graph.get_tensor_by_name("model/Sigmoid:0"), feed_dict=feed)


def main() -> None:
    patches_path, *pairs = sys.argv[1:]
    if not pairs or len(pairs) % 2:
        sys.exit(__doc__)
    batch = np.load(patches_path).astype(np.float32)
    for checkpoint_dir, out_path in zip(pairs[::2], pairs[1::2]):
        np.save(out_path, scores(checkpoint_dir, batch).astype(np.float32))


if __name__ == "__main__":
    main()
