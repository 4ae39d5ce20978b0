"""The audit trail: one append-only, hash-chained table of who did and who saw what.

Every stored event, every decision of the gate (allowed or denied, with the sealed
break-glass reason where one was given), logins, failed logins, exports, reports,
shreds, key rotations and checkpoints are entries of `anxin_audit`. Each entry
commits to the one before it (`prev_hash`) and its own fields (`entry_hash`); an
event's entry also commits to the event's stored bytes, its ciphertext
(`payload_hash`), so the trail verifies without decrypting anything and still
verifies after a stream is shredded. Signed checkpoints (Ed25519) pin the chain's
head so that a rewritten or truncated history is caught by anyone holding the public
key. The format is documented, byte for byte, in docs/audit.md.

The trail holds ids, codes and hashes only, never a name or free text: the one free
text, a break-glass reason, is stored encrypted under the key of the stream it opened
(so shredding the stream erases it too), as is a reviewer's comment on it. The trail
therefore outlives erasure.

Every break-glass use waits for review (anxin.audit.reviews): the school's principal or
another supervisor marks it justified or not, once; the review is itself an entry
(`break_glass_review`) and its state a side table keyed by the use's seq.

Event entries are written by the event recorder inside the events' own transaction
(`anxin.storage.Database.write_with_events`); the others by `Gate.record_access`,
`Gate.record_security_event`, `ErasureCommands.erase`, `Core.rotate_master_key` and the
checkpoint functions below. Appends are serialised: SQLite has one writer; on PostgreSQL
the chain is extended only by the holder of one row's lock (the store's row of
`anxin_audit_meta`), and the entries of a page view or a login are recorded in one
statement that waits for no lock: durable at once as pending, chained by whoever holds
the lock next (`record_many`, `settle`).
"""

from anxin.audit.chain import (  # noqa: F401
    AUDIT_NOTES,
    CHAIN_FUNCTION,
    CHECKPOINT_FORMAT,
    COLUMNS,
    ERASED_LABEL,
    FORMAT,
    INDEXES,
    KINDS,
    META_COLUMNS,
    META_TABLE,
    PENDING_TABLE,
    RECORD_FUNCTION,
    REVIEWS_COLUMNS,
    REVIEWS_TABLE,
    SECURITY_KINDS,
    SEP,
    TABLE,
    TABLE_COLUMNS,
    AuditKeyMissing,
    Row,
    access_row,
    append,
    append_events,
    canonical_json,
    checkpoint_message,
    entry_hash,
    event_payload_hash,
    genesis_hash,
    login_subject,
    pending_event_meta,
    record,
    record_many,
    seal_reason,
    security_row,
    settle,
    setup,
    store_id,
    unseal_reason,
)
from anxin.audit.checkpoints import (  # noqa: F401
    Checkpoint,
    create_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    maybe_checkpoint,
    parse_public_key,
    public_key_path,
    public_key_text,
    signing_key,
    signing_key_path,
    take_checkpoint,
)
from anxin.audit.queries import (  # noqa: F401
    CSV_COLUMNS,
    EXPORTS,
    SHORT_NUMBER,
    Ambiguous,
    access_log,
    break_glass_log,
    case_history,
    denied_log,
    export_csv,
    find_streams,
    last_checkpoint,
    last_verification,
    query,
    require_reason,
    resolve_stream,
    resolve_student,
    student_access,
    verify_requested,
)
from anxin.audit.reviews import (  # noqa: F401
    pending_review_count,
    review_break_glass,
    review_queue,
    review_states,
)
from anxin.audit.verification import (  # noqa: F401
    PARALLEL_FROM,
    Problem,
    VerifyReport,
    verify,
)
