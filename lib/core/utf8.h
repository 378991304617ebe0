/* UTF-8 validation, incremental, for text that arrives in pieces (WebSocket
 * text messages across fragments, message payloads). A pure function. */
#ifndef SP_CORE_UTF8_H
#define SP_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Incremental UTF-8 validation (rejects overlongs, surrogates, > U+10FFFF).
 * *state starts at 0; returns false once the input is invalid. The text is
 * complete and valid when the last call returned true and *state is 0. */
bool sp_utf8_feed(uint32_t *state, const uint8_t *p, size_t len);

#endif
