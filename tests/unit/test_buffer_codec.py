"""The edge buffer's batch packing: whatever the rows, they come back as they went in."""

from hypothesis import given
from hypothesis import strategies as st

from plantlake.ingest.buffer_codec import decode_batch, encode_batch

rows = st.lists(
    st.tuples(st.sampled_from(["p.telemetry", "p.lifecycle", "p.dead_letter", "é"]),
              st.binary(max_size=300), st.binary(max_size=3000)),
    max_size=200,
)  # fmt: skip


@given(rows)
def test_a_batch_decodes_to_the_rows_it_was_made_of(batch):
    topics, body = encode_batch(batch)
    assert decode_batch(topics, body, len(batch)) == batch


def test_a_key_longer_than_64_kb_fits():
    batch = [("t", b"k" * 70_000, b"v")]
    assert decode_batch(*encode_batch(batch), 1) == batch
