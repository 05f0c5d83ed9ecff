"""Maildir++ on shared storage, compatible with Dovecot 2.3 and safe with many writers.

See docs/maildir.md. The API the IMAP server uses:
``Mailbox`` (one folder: sync, flags, expunge, append, copy, move),
``Folders`` (the folder tree and subscriptions), ``MaildirWatch`` (change
notification); MTA delivery is ``imapha.maildir.deliver.deliver``.
"""

from imapha.maildir.folders import FolderError, Folders
from imapha.maildir.fsops import FileSystem, LockLost, LockTimeout
from imapha.maildir.keywords import KeywordLimit
from imapha.maildir.mailbox import Mailbox, Message, MessageExpunged, StoreMode, SyncResult
from imapha.maildir.watch import MaildirWatch

__all__ = [
    "FileSystem",
    "FolderError",
    "Folders",
    "KeywordLimit",
    "LockLost",
    "LockTimeout",
    "Mailbox",
    "MaildirWatch",
    "Message",
    "MessageExpunged",
    "StoreMode",
    "SyncResult",
]
