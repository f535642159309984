// libnghttp2 (Debian 12: 1.52, the ssize_t API).
#pragma once
#include <nghttp2/nghttp2.h>
