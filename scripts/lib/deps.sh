# Installs the Debian packages the build and tests need, only those that are missing.
failoverd_build_packages=(
    build-essential cmake ninja-build pkg-config clang-format
    libcurl4-openssl-dev libboost-program-options-dev nlohmann-json3-dev
    libsystemd-dev libspdlog-dev libfmt-dev doctest-dev libssl-dev
    python3 iproute2 procps curl ccache
    dpkg-dev lintian systemd debootstrap systemd-container ruby
)
# A real Docker engine per node namespace in the e2e tests, the demo and the benchmarks
# (tests/docker): the engine, and BusyBox for the app image built offline.
failoverd_docker_packages=(docker.io busybox-static)

ensure_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "error: missing packages and not root; run: apt-get install ${missing[*]}" >&2
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}
