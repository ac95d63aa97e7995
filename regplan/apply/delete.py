"""Deleting a pruned tag: the last step of a `prune` step, after all its copies landed."""

from __future__ import annotations

from regplan import logs
from regplan.apply.copy import Transfer
from regplan.apply.status import ActionStatus
from regplan.errors import RegplanError
from regplan.plan import model
from regplan.plan.model import Action
from regplan.refs import ImageRef
from regplan.registry.api import Backend

log = logs.get(__name__)


def delete_tag(client: Backend, action: Action) -> Transfer:
    """Remove the tag if it still points at the digest the plan recorded. Re-checked right
    before the DELETE, always: a tag moved since planning must survive, and a delete by
    digest would take every tag on that digest with it."""
    ref = ImageRef.parse(action.target)
    head = client.manifest_head(ref)
    if head is None:
        return Transfer(ActionStatus.SKIPPED, "already deleted")
    if head.digest != action.before:
        raise RegplanError(
            f"{action.target} moved to {head.digest[:19]} since planning "
            f"(planned to delete {str(action.before)[:19]}): not deleted"
        )
    log.info("Deleting tag", target=action.target, digest=action.before, by=action.delete_by)
    if action.delete_by == model.BY_DIGEST:
        client.manifest_delete(ref.repo().with_digest(head.digest))
    else:
        client.manifest_delete(ref)
    return Transfer(ActionStatus.DONE, "deleted")
