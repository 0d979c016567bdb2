"""results/best.md refuses records it cannot trust, naming the file (the card itself: tests/test_export.py)."""
import pytest

from centerface_flow.errors import UserError
from centerface_flow.export.card import model_card


@pytest.fixture
def records(tmp_path):
    best = tmp_path / "best.txt"
    best.write_text("epoch_1\nmetric: hard\n")
    ap = tmp_path / "ap_by_epoch.csv"
    ap.write_text("model,epoch,easy,medium,hard\nepoch_1,1,0.5,0.4,0.3\n")
    return best, ap


@pytest.mark.parametrize(("which", "text", "message"), [
    (0, "", "best.txt: line 1"),
    (0, "epoch_7\n", "ap_by_epoch.csv: no row for the best model 'epoch_7'"),
    (1, "model,epoch\nepoch_1,1\n", "ap_by_epoch.csv: no column.*easy"),
], ids=["empty best.txt", "best model missing from the summary", "summary without AP columns"])
def test_bad_records(records, tmp_path, which, text, message):
    records[which].write_text(text)
    with pytest.raises(UserError, match=message):
        model_card(*records, [], tmp_path / "best.onnx", "c.ckpt")


def test_onnx_not_written_by_export(records, tmp_path):
    best, ap = records
    junk = tmp_path / "best.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="best.onnx: cannot read ONNX"):
        model_card(best, ap, [], junk, "c.ckpt")


def test_unreadable_check_report(records, tmp_path, released_onnx):
    best, ap = records
    check = tmp_path / "best.onnx.check.json"
    check.write_text("{not json")
    with pytest.raises(UserError, match="best.onnx.check.json: not a readable export check report"):
        model_card(best, ap, [check], released_onnx, "c.ckpt")


def test_onnx_without_export_metadata(records, released_onnx):
    best, ap = records
    with pytest.raises(UserError, match="centerface.onnx: no 'centerface_meta' metadata"):
        model_card(best, ap, [], released_onnx, "c.ckpt")
