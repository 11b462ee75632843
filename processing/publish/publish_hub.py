"""Push a build's Hugging Face dataset folder (``DIR/hf``) to the Hub.

The folder is sent with ``HfApi.create_commit`` in commits of bounded size
(data files first, the dataset card ``README.md`` in the last commit, so the
card never points at shards that are not there yet), then the version is
tagged. ``create_commit`` skips files the repo already holds unchanged, so a
rerun after an interruption sends only what is missing. A tag that already
exists with other content is refused (versions are immutable).

``dry_run=True`` returns the exact plan (every operation, file and size)
without network access. The token comes from the usual places (argument,
``HF_TOKEN``, ``hf auth login``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .manifest import list_build_files
from .publish import PublishError, check_name

CARD = "README.md"
MB = 1 << 20


@dataclass(frozen=True)
class HubFileOp:
    path_in_repo: str
    local_path: Path
    size: int


@dataclass
class HubCommit:
    message: str
    operations: list[HubFileOp]

    @property
    def bytes(self) -> int:
        return sum(op.size for op in self.operations)

    def to_operations(self) -> list[Any]:
        """The ``CommitOperationAdd`` list that is sent for this commit."""
        from huggingface_hub import CommitOperationAdd

        return [CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=str(op.local_path)) for op in self.operations]


@dataclass
class HubPushPlan:
    repo_id: str
    version: str  # also the tag
    folder: Path
    private: bool
    commits: list[HubCommit]
    dry_run: bool
    pushed: bool = False  # commits were sent
    already_published: bool = False  # the tag existed with identical files: nothing was sent
    commit_urls: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[HubFileOp]:
        return [op for commit in self.commits for op in commit.operations]

    @property
    def total_bytes(self) -> int:
        return sum(op.size for op in self.files)

    def __str__(self) -> str:
        if self.dry_run:
            return self.describe()
        state = "already published (no-op)" if self.already_published else "pushed" if self.pushed else "not pushed"
        return f"datasets/{self.repo_id} tag {self.version}: {state}; {len(self.files)} files, {self.total_bytes / MB:.2f} MiB in {len(self.commits)} commit(s)"

    def describe(self) -> str:
        """Human-readable plan: each commit and each file with its size."""
        lines = [
            f"hub push {'(dry run) ' if self.dry_run else ''}to datasets/{self.repo_id} "
            f"({'private' if self.private else 'public'}), tag {self.version}: "
            f"{len(self.files)} files, {self.total_bytes / MB:.2f} MiB in {len(self.commits)} commit(s)"
        ]
        for i, commit in enumerate(self.commits, 1):
            lines.append(f"commit {i}: {commit.message} ({len(commit.operations)} files, {commit.bytes / MB:.2f} MiB)")
            lines.extend(f"  add {op.path_in_repo}  {op.size} bytes" for op in commit.operations)
        return "\n".join(lines)


def read_card_yaml(card: Path) -> dict[str, Any]:
    """The YAML front matter of a dataset card (``---`` ... ``---``), or {}."""
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        raise PublishError(f"{card}: YAML front matter is not closed by a '---' line")
    try:
        data = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise PublishError(f"{card}: YAML front matter does not parse ({exc})") from None
    if not isinstance(data, dict):
        raise PublishError(f"{card}: YAML front matter must be a mapping")
    return data


def _patterns(data_files: Any) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, list):
        out: list[str] = []
        for item in data_files:
            out.extend(_patterns(item.get("path") if isinstance(item, dict) else item))
        return out
    if isinstance(data_files, dict):
        return _patterns(data_files.get("path"))
    return []


def validate_hf_folder(folder: Path) -> dict[str, Any]:
    """Check that ``folder`` is a loadable Hugging Face dataset folder; returns the card's YAML.

    It needs a README.md card, and every ``configs[].data_files`` pattern in it
    must match at least one file (otherwise ``load_dataset`` fails after the push).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder}: Hugging Face folder does not exist (build with the 'hf' export)")
    card = folder / CARD
    if not card.is_file():
        raise PublishError(f"{card}: missing: the dataset card is pushed as the repo's README.md")
    meta = read_card_yaml(card)
    configs = meta.get("configs") or []
    if not isinstance(configs, list):
        raise PublishError(f"{card}: 'configs' must be a list")
    for config in configs:
        name = config.get("config_name", "default") if isinstance(config, dict) else config
        patterns = _patterns(config.get("data_files")) if isinstance(config, dict) else []
        if not patterns:
            raise PublishError(f"{card}: config {name!r} lists no data_files")
        for pattern in patterns:
            if not any(p.is_file() for p in folder.glob(pattern)):
                raise PublishError(f"{card}: config {name!r}: data_files pattern {pattern!r} matches no file in {folder}")
    if not configs and not any(p.suffix in (".parquet", ".csv", ".json", ".jsonl", ".arrow") for p in folder.rglob("*")):
        raise PublishError(f"{folder}: no data files and no 'configs' in {CARD}")
    return meta


def plan_hub_push(
    hf_folder: Path,
    repo_id: str,
    version: str,
    private: bool = True,
    dry_run: bool = False,
    max_commit_bytes: int = 2048 * MB,
    max_commit_files: int = 500,
) -> HubPushPlan:
    """Split the folder into commits of at most ``max_commit_files`` files / ``max_commit_bytes`` bytes.

    Data files go first (largest directories in path order); README.md and the
    other top-level files form the last commit. A single file larger than the
    byte bound gets a commit of its own.
    """
    check_name(version, "version")
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"Hub repo id {repo_id!r} must look like 'user-or-org/dataset-name'")
    if max_commit_files < 1 or max_commit_bytes < 1:
        raise PublishError("hub commit bounds must be >= 1")
    folder = Path(hf_folder)
    validate_hf_folder(folder)
    files = list_build_files(folder)
    ops = [HubFileOp(p.relative_to(folder).as_posix(), p, p.stat().st_size) for p in files]
    top = [op for op in ops if "/" not in op.path_in_repo]
    nested = [op for op in ops if "/" in op.path_in_repo]

    batches: list[list[HubFileOp]] = []
    current: list[HubFileOp] = []
    for op in nested:
        if current and (len(current) >= max_commit_files or sum(o.size for o in current) + op.size > max_commit_bytes):
            batches.append(current)
            current = []
        current.append(op)
    if current:
        batches.append(current)
    card_last = sorted(top, key=lambda op: op.path_in_repo == CARD)  # README.md is the very last operation
    batches.append(card_last)
    n = len(batches)
    commits = [
        HubCommit(
            f"{version}: " + ("dataset card and metadata" if i == n else "data") + (f" ({i}/{n})" if n > 1 else ""),
            batch,
        )
        for i, batch in enumerate(batches, 1)
    ]
    return HubPushPlan(repo_id, version, folder, private, commits, dry_run)


def _git_blob_sha1(path: Path) -> str:
    """The id git gives a file's content (what the Hub reports for non-LFS files)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    from ..audio_io import file_sha256

    return file_sha256(path)


def _tag_matches(api: Any, plan: HubPushPlan) -> bool:
    """True when the existing tag holds exactly the planned files (by LFS sha256 or git blob id)."""
    remote = {
        entry.path: entry
        for entry in api.list_repo_tree(plan.repo_id, revision=plan.version, recursive=True, repo_type="dataset")
        if getattr(entry, "size", None) is not None  # files only
    }
    remote.pop(".gitattributes", None)
    planned = {op.path_in_repo: op for op in plan.files}
    if set(remote) != set(planned):
        return False
    for path, op in planned.items():
        entry = remote[path]
        if entry.size != op.size:
            return False
        lfs = getattr(entry, "lfs", None)
        if lfs is not None:
            if lfs.sha256 != _file_sha256(op.local_path):
                return False
        elif getattr(entry, "blob_id", None) != _git_blob_sha1(op.local_path):
            return False
    return True


def _hub_error(exc: Exception, repo_id: str, action: str) -> PublishError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    hint = {401: "the token was rejected", 403: "the token cannot write to this repo", 404: "repo not found"}.get(status, "")
    return PublishError(f"datasets/{repo_id}: {action} failed{f' ({hint})' if hint else ''}: {exc}")


def push_to_hub(
    hf_folder: Path,
    repo_id: str,
    version: str,
    token: Optional[str] = None,
    private: bool = True,
    dry_run: bool = False,
    *,
    max_commit_mb: int = 2048,
    max_commit_files: int = 500,
) -> HubPushPlan:
    """Push ``hf_folder`` to the dataset repo ``repo_id`` and tag it ``version``; see the module docstring."""
    plan = plan_hub_push(hf_folder, repo_id, version, private, dry_run, max_commit_mb * MB, max_commit_files)
    if dry_run:
        return plan

    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if not token:
        raise PublishError(f"datasets/{repo_id}: no Hugging Face token: pass --hub-token, set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        tags = {ref.name for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags}
        if version in tags:
            if _tag_matches(api, plan):
                plan.already_published = True
                return plan
            raise PublishError(
                f"datasets/{repo_id}: tag {version} already exists with different files; versions are immutable: push a new version"
            )
        for commit in plan.commits:
            info = api.create_commit(repo_id, commit.to_operations(), commit_message=commit.message, repo_type="dataset")
            plan.commit_urls.append(str(getattr(info, "commit_url", info)))
        api.create_tag(repo_id, tag=version, tag_message=f"dataset version {version}", repo_type="dataset")
    except PublishError:
        raise
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo_id, "push") from exc
    except (OSError, ValueError) as exc:  # connection errors (httpx/requests derive from these or RuntimeError)
        raise PublishError(f"datasets/{repo_id}: push failed: cannot reach the Hub ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # the Hub client raises many kinds; name the repo whatever it was
        raise PublishError(f"datasets/{repo_id}: push failed: {type(exc).__name__}: {exc}") from exc
    plan.pushed = True
    return plan
