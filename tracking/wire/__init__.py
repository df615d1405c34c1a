"""Sans-IO Engine.IO (v3, v4) and Socket.IO (v4/v5 protocol) decoding.

Bytes or text in, typed packets out; no sockets, no asyncio.  Anything that cannot be
decoded comes back as a :class:`DecodeFailure` value instead of an exception.
"""
