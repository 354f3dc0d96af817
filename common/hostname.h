// This machine's host name, as peers register it with the coordinator (and servers
// advertise their data endpoint under it).
#pragma once

#include <string>

namespace tessera {

// gethostname(2); "" when it fails.
std::string Hostname();

}  // namespace tessera
