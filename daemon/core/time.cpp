#include "daemon/core/time.hpp"

#include <cstdio>

namespace failoverd {

std::string format_duration(Duration d) {
    char buf[48];
    const double s = seconds(d);
    if (s < 0) {
        return "-" + format_duration(-d);
    }
    if (s < 1.0) {
        std::snprintf(buf, sizeof buf, "%.0f ms", s * 1000.0);
    } else {
        std::snprintf(buf, sizeof buf, "%.2f s", s);
    }
    return buf;
}

}  // namespace failoverd
