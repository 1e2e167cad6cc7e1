# The sales-ops code location image for the Dagster stack (infra/dagster.yaml): the code server,
# the daemon, the webserver and each run's ECS task all run it. Pinned by the same constraints as
# the local venv. Build from the repository root:
#   docker build -t sales-ops-dagster:$(git rev-parse --short HEAD) .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app

# Dependencies first (a layer that changes only with the pins), then the code.
COPY pyproject.toml constraints.txt README.md ./
COPY sales_ops ./sales_ops
RUN pip install -c constraints.txt .

# The production instance config and the workspace (the code server beside each process).
COPY dagster/production/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY dagster/production/workspace.yaml /opt/dagster/workspace.yaml

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin dagster
USER 10001

# The task definitions give each container its command; a bare `docker run` serves the code.
CMD ["dagster", "api", "grpc", "-h", "127.0.0.1", "-p", "4000", "-m", "sales_ops.definitions", "-a", "defs"]
