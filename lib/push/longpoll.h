/* Long-poll subscribers: a GET held until a message after its cursor
 * exists or its timeout passes (then 304), answered with the messages and
 * the next cursor; woken polls are answered in slices, one rendering
 * shared by every poll that gets the same answer. */
#ifndef SP_PUSH_LONGPOLL_H
#define SP_PUSH_LONGPOLL_H

#include "push/transport.h"

extern const struct sp_transport_ops sp_longpoll_transport;

#endif
