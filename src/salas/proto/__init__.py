"""Sans-I/O codecs, one per door: bytes in, core commands out; events in, bytes out.

No sockets, no asyncio, no clock. Each door's ``receive_data`` is total:
any bytes produce commands and replies, never an exception.
"""
