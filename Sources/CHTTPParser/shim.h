// nodejs http-parser (Debian 12: libhttp-parser-dev 2.9.4), the HTTP/1.1 request parser of the REST listener.
#pragma once
#include <http_parser.h>

// The parser's flags and errno live in bit-fields, which Swift cannot read: these accessors can.
static inline unsigned int cswitchyard_http_errno(const http_parser *parser) { return parser->http_errno; }
static inline unsigned int cswitchyard_http_method(const http_parser *parser) { return parser->method; }
static inline unsigned int cswitchyard_http_flags(const http_parser *parser) { return parser->flags; }
static inline void cswitchyard_http_pause(http_parser *parser, int paused) { http_parser_pause(parser, paused); }
