# Sourced by the tools/*_device_run.sh scripts on the GPU machine (a bare machine, no
# network): check for the GPU, install the carried wheels (.whl/: dm-pix, tensorboardX,
# espeakng-loader; DESIGN.md says why) with --target, then the project over the image's jax.
# Expects $out (the output folder); sets PYTHONPATH, the compile cache and unbuffered output,
# starts $out/run.log and defines quiet (a command's output into the log, progress bars
# thinned to one line in $quiet_every, default 25) and pack NAME FOLDER.
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || {
    echo "$(basename "$0"): no GPU here (nvidia-smi failed); run it on the device machine"
    exit 2
}
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >"$out/install.log" 2>&1 || { tail -5 "$out/install.log"; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The ffmpeg binary of imageio-ffmpeg (its wheel is over the carry limit; .ffmpeg/ holds the
# binary xz-compressed and the package without it): mp4 writing, reading and muxing.
if [ -f .ffmpeg/ffmpeg.xz ]; then
    mkdir -p /tmp/site && cp -r .ffmpeg/imageio_ffmpeg /tmp/site/ &&
        xz -T0 -dc .ffmpeg/ffmpeg.xz >/tmp/ffmpeg && chmod +x /tmp/ffmpeg &&
        export IMAGEIO_FFMPEG_EXE=/tmp/ffmpeg PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$out/install.log" 2>&1 ||
    { tail -5 "$out/install.log"; exit 1; }
export PYTHONUNBUFFERED=1 JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache
date -u +"%Y-%m-%dT%H:%M:%SZ start" | tee "$out/run.log"
quiet() {
    tr '\r' '\n' | grep -v '^\s*$' | awk -v n="${quiet_every:-25}" 'NR % n == 1 || !/it\/s|step\/s|\?/' |
        tee -a "$out/run.log"
}
pack() {  # pack NAME FOLDER: tar a folder into <=15 MB parts under $out
    tar -C "$(dirname "$2")" -cf "/tmp/$1.tar" "$(basename "$2")" &&
        split -b 15M -d "/tmp/$1.tar" "$out/$1.tar.part" && rm -f "/tmp/$1.tar"
}
