"""maildir"""
