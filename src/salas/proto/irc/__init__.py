"""The IRC door: RFC 1459/2812 as modern clients expect it, with IRCv3."""
