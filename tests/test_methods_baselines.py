import pytest
import torch

from harness.method_specs import get_method


def test_mean_copies_overlap_and_fills_mean(tiny_context):
    plan = get_method("mean")(tiny_context)
    assert plan.validate(d=8) == []
    tv, sv = tiny_context.target_tokenizer.get_vocab(), tiny_context.source_tokenizer.get_vocab()
    assert plan.sources_of(tv["▁the"]) == [(sv["the"], 1.0)]
    i = plan.explicit_ids.tolist().index(tv["▁서울"])
    assert torch.allclose(plan.explicit_rows[i], tiny_context.source_embeddings.mean(0))
    assert plan.explicit_bias[i] == pytest.approx(float(tiny_context.source_bias.mean()))
    d = plan.diagnostics()
    assert d["copied"] + d["explicit"] == tiny_context.n_target and d["mixed"] == 0


def test_random_is_seeded_and_pure_by_default(tiny_context):
    a = get_method("random")(tiny_context)
    b = get_method("random")(tiny_context)
    assert a.validate(d=8) == [] and torch.equal(a.explicit_rows, b.explicit_rows)
    assert len(a.explicit_ids) == tiny_context.n_target  # nothing copied unless asked
    tiny_context.seed = 1
    c = get_method("random")(tiny_context)
    assert not torch.equal(a.explicit_rows, c.explicit_rows)


def test_overlap_equals_random_with_copy(tiny_context):
    o = get_method("overlap")(tiny_context)
    r = get_method("random")(tiny_context, copy_overlap=True)
    assert o.validate(d=8) == [] and torch.equal(o.explicit_ids, r.explicit_ids)
    assert torch.equal(o.explicit_rows, r.explicit_rows) and o.diagnostics()["copied"] > 5


def test_parameters_are_typed_and_checked(tiny_context):
    spec = get_method("overlap")
    assert {p.name: p.default for p in spec.params}["std_scale"] == 1.0
    assert spec.resolve_params({"std_scale": 2}) ["std_scale"] == 2.0
    with pytest.raises(ValueError, match="did you mean 'std_scale'"):
        spec.resolve_params({"std_scal": 1.0})
    with pytest.raises(ValueError, match="must be true or false"):
        get_method("mean").resolve_params({"copy_overlap": "yes"})
