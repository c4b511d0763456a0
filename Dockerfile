# syntax=docker/dockerfile:1
# Stage 1: build the wheel (Rust extension + Python package) with maturin.
FROM rust:1-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install "maturin>=1.9,<2"
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY engine_core engine_core
COPY pyservice pyservice
RUN /opt/maturin/bin/maturin build --release --out /wheels

# Stage 2: a slim Python runtime with only the wheel installed.
FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --system --create-home copyengine
USER copyengine
ENTRYPOINT ["copyengine"]
CMD ["--help"]
