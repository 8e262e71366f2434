"""Thin asyncio adapters: sockets to door codecs and back."""
