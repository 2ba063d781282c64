"""The learned projection of TF-IDF entries (models/term_bag.py) and the lazy Adam that steps its
sparse table (assembly/sparse_adam.py): each against its definition by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelemb.assembly.sparse_adam import RowSparseAdam
from labelemb.assembly.tfidf import term_entries
from labelemb.models.term_bag import TermBag


def entries_of(ids: list[list[int]], weights: list[list[float]]) -> torch.Tensor:
    return torch.stack([torch.tensor(ids, dtype=torch.float32), torch.tensor(weights)], dim=-1)


def test_bag_is_the_weighted_sum_of_its_rows_and_padding_reads_nothing() -> None:
    bag = TermBag(terms=5, width=3, dropout=0.0).eval()
    with torch.no_grad():
        bag.bias.copy_(torch.tensor([0.1, -10.0, 0.0]))
    entries = entries_of([[0, 2, 5], [4, 5, 5]], [[0.5, 2.0, 0.0], [1.0, 0.0, 0.0]])
    table = bag.table.detach()
    by_hand = torch.stack([0.5 * table[0] + 2.0 * table[2], 1.0 * table[4]]) + bag.bias.detach()
    assert torch.allclose(bag(entries), torch.relu(by_hand))
    assert torch.equal(table[5], torch.zeros(3))


def test_table_gradient_is_sparse_over_the_rows_read() -> None:
    bag = TermBag(terms=6, width=2, dropout=0.0)
    bag(entries_of([[1, 3, 6]], [[1.0, 0.5, 0.0]])).sum().backward()
    grad = bag.table.grad
    assert grad is not None and grad.is_sparse
    assert set(grad.coalesce().indices()[0].tolist()) == {1, 3}


def test_stacked_bags_equal_each_seeds_own_and_so_do_their_gradients() -> None:
    torch.manual_seed(0)
    seeds, terms, width = 3, 7, 4
    bag = TermBag(terms, width, dropout=0.0)
    tables = torch.randn(seeds, terms + 1, width, requires_grad=True)
    bias = torch.randn(seeds, width, requires_grad=True)
    ids = torch.randint(0, terms + 1, (seeds, 5, 6)).float()
    entries = torch.stack([ids, torch.rand(seeds, 5, 6)], dim=-1)
    stacked = bag.stacked_forward({"table": tables, "bias": bias}, entries)
    stacked.pow(2).sum().backward()
    stacked_grad = tables.grad.to_dense()
    tables.grad = None
    own = torch.stack(
        [
            torch.relu(
                F.embedding_bag(
                    entries[s, ..., 0].long(), tables[s], per_sample_weights=entries[s, ..., 1], mode="sum"
                )
                + bias[s]
            )
            for s in range(seeds)
        ]
    )
    assert torch.allclose(stacked, own, atol=1e-6)
    own.pow(2).sum().backward()
    assert torch.allclose(stacked_grad, tables.grad, atol=1e-5)


def test_lazy_adam_steps_touched_rows_as_adam_does_and_leaves_the_rest() -> None:
    torch.manual_seed(1)
    start = torch.randn(6, 3)
    sparse_param = torch.nn.Parameter(start.clone())
    dense_param = torch.nn.Parameter(start.clone())
    lazy = RowSparseAdam([sparse_param], lr=0.1)
    plain = torch.optim.Adam([dense_param], lr=0.1)
    rows = torch.tensor([1, 4, 1])  # row 1 twice: summed, as a sparse gradient coalesces
    values = torch.randn(3, 3)
    for _ in range(3):
        sparse_param.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (6, 3))
        dense_param.grad = sparse_param.grad.to_dense()
        lazy.step()
        plain.step()
    touched = torch.tensor([1, 4])
    assert torch.allclose(sparse_param[touched], dense_param[touched], atol=1e-6)
    untouched = torch.tensor([0, 2, 3, 5])
    assert torch.equal(sparse_param.detach()[untouched], start[untouched])
    assert set(lazy.state[sparse_param]) == {"step", "exp_avg", "exp_avg_sq"}


def test_lazy_adam_steps_a_stacked_tables_seed_rows_as_adam_does() -> None:
    torch.manual_seed(4)
    start = torch.randn(2, 5, 3)  # (seed, row, width): the batched trainer's table
    stacked = torch.nn.Parameter(start.clone())
    dense = torch.nn.Parameter(start.clone())
    lazy, plain = RowSparseAdam([stacked], lr=0.1), torch.optim.Adam([dense], lr=0.1)
    bag = TermBag(4, width=3)
    ids = torch.tensor([[[0.0, 2.0, 4.0], [2.0, 3.0, 4.0]], [[1.0, 4.0, 4.0], [1.0, 0.0, 4.0]]])
    entries = torch.stack([ids, torch.rand(2, 2, 3) * (ids < 4)], dim=-1)
    for _ in range(3):
        bag.stacked_forward({"table": stacked, "bias": torch.zeros(2, 3)}, entries).pow(2).sum().backward()
        assert stacked.grad._nnz() == 7  # each (seed, row) read once, padding's included
        dense.grad = stacked.grad.to_dense()
        lazy.step()
        plain.step()
        stacked.grad = None
    assert torch.allclose(stacked, dense, atol=1e-6)


def test_lazy_adam_steps_dense_parameters_as_adam() -> None:
    torch.manual_seed(2)
    a, b = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(4))
    b.data.copy_(a.data)
    ours, theirs = RowSparseAdam([a], lr=0.05), torch.optim.Adam([b], lr=0.05)
    for _ in range(3):
        grad = torch.randn(4)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    assert torch.equal(a, b)


def test_lazy_adam_steps_on_the_gradients_its_closure_makes() -> None:
    # As any torch optimiser: step(closure) evaluates the closure first and returns its loss.
    torch.manual_seed(3)
    start = torch.randn(5, 2)
    ids = torch.tensor([1, 3, 1])
    with_closure, by_hand = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    stepped = RowSparseAdam([with_closure], lr=0.1)
    plain = RowSparseAdam([by_hand], lr=0.1)

    def closure() -> torch.Tensor:
        stepped.zero_grad()
        loss = F.embedding(ids, with_closure, sparse=True).pow(2).sum()
        loss.backward()
        return loss

    for _ in range(2):
        loss = stepped.step(closure)
        plain.zero_grad()
        F.embedding(ids, by_hand, sparse=True).pow(2).sum().backward()
        plain.step()
    assert loss is not None and loss.item() > 0
    assert torch.equal(with_closure, by_hand)


def test_lazy_adam_refuses_weight_decay_on_a_sparse_table() -> None:
    param = torch.nn.Parameter(torch.zeros(3, 2))
    param.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.ones(1, 2), (3, 2))
    with pytest.raises(ValueError, match="weight_decay"):
        RowSparseAdam([param], lr=0.1, weight_decay=0.01).step()


def test_entries_keep_each_rows_heaviest_terms_heaviest_first_padded_past_the_last_term() -> None:
    from scipy.sparse import csr_matrix

    matrix = csr_matrix(
        ([0.1, 0.7, 0.3, 0.9, 0.2], [0, 2, 3, 1, 4], [0, 3, 3, 5]), shape=(3, 5), dtype="float32"
    )
    entries = term_entries(matrix, max_terms=2)
    assert entries.shape == (3, 2, 2)
    assert entries[0].tolist() == [[2.0, pytest.approx(0.7)], [3.0, pytest.approx(0.3)]]
    assert entries[1].tolist() == [[5.0, 0.0], [5.0, 0.0]]  # an empty text: padding only
    assert entries[2].tolist() == [[1.0, pytest.approx(0.9)], [4.0, pytest.approx(0.2)]]


def test_a_vocabulary_too_large_for_exact_float_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="terms"):
        TermBag(terms=2**24, width=1)



def test_lazy_adam_steps_a_non_contiguous_table_as_adam_does() -> None:
    torch.manual_seed(5)
    # (seed, row, width) seen through a permutation: no (rows, width) view of it exists.
    stacked = torch.nn.Parameter(torch.randn(5, 2, 3).permute(1, 0, 2))
    dense = torch.nn.Parameter(stacked.detach().clone())
    lazy, plain = RowSparseAdam([stacked], lr=0.1), torch.optim.Adam([dense], lr=0.1)
    for _ in range(3):
        rows = torch.tensor([[0, 1, 1], [4, 0, 2]])
        stacked.grad = torch.sparse_coo_tensor(rows, torch.randn(3, 3), (2, 5, 3))
        dense.grad = stacked.grad.to_dense()
        lazy.step()
        plain.step()
    assert torch.allclose(stacked, dense, atol=1e-5)  # Adam's own arithmetic rounds otherwise


def test_lazy_adam_steps_a_gradient_that_touched_no_row() -> None:
    start = torch.randn(2, 5, 3)
    stacked = torch.nn.Parameter(start.clone())
    lazy = RowSparseAdam([stacked], lr=0.1)
    stacked.grad = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3), (2, 5, 3))
    lazy.step()
    assert torch.equal(stacked.detach(), start)
    assert int(lazy.state[stacked]["step"]) == 1  # the step counted, as SparseAdam counts it
