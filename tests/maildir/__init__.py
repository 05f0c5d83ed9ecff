"""Tests of imapha.maildir, imapha.deliver and the Dovecot runner."""
