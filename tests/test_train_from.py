"`split_backbone` on the paper's backbones and the benchmark's: timm's `feature_info` stages, run in sequence, are `forward_features`."
import pytest, torch
from jif_fastai.core import eval_mode
from jif_fastai.encoders import ImageEncoder, PAPER_BACKBONES
from jif_fastai.frozen import backbone_stages, split_backbone

CUTTABLE = ('tf_efficientnet_lite0', 'resnet10t') + tuple(b for b in PAPER_BACKBONES if b != 'legacy_xception')

@pytest.mark.parametrize('name', CUTTABLE)
def test_every_cut_composes_to_forward_features(name):
    torch.manual_seed(0)
    enc = ImageEncoder(name, pretrained=False)
    n = len(backbone_stages(enc))
    assert n == len(enc.model.feature_info)
    x = torch.randn(2, 3, 96, 96)
    with eval_mode(enc), torch.no_grad():
        want = enc.forward_features(x)
        for k in range(-n, n + 1):
            head, tail = split_backbone(enc, k)
            # float32 on any CPU: the same convolutions in the same order, so only summation order can differ
            torch.testing.assert_close(tail.forward_features(head.forward_features(x)), want, rtol=1e-4, atol=1e-5)
    trained = {id(p) for p in split_backbone(enc, -1)[1].parameters()}
    assert trained and trained < {id(p) for p in enc.parameters()}   # the last stage: some, not all, of the backbone's own weights

def test_efficientnet_head_closes_the_last_stage():
    enc = ImageEncoder('tf_efficientnet_lite0', pretrained=False)
    last = split_backbone(enc, -1)[1]
    assert enc.model.conv_head in list(last.body) and enc.model.bn2 in list(last.body)   # 320 -> 1280 channels trains with stage 4
    assert enc.model.blocks[4] not in list(last.body)

def test_a_backbone_whose_stages_do_not_run_in_sequence_is_refused():
    # timm marks legacy_xception's stages inside its residual blocks (`block2.rep.0`, ...): cut there, the skip path
    # would be lost, so `train_from` refuses it with one line instead of training a different network
    with pytest.raises(ValueError, match="'legacy_xception': forward_features does not run its modules one after another"):
        backbone_stages(ImageEncoder('legacy_xception', pretrained=False))
