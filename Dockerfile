# One image for every Chronos process; the command picks the role:
#   chronos migrate | ticker | ingress | worker | jobs apply -f FILE | runs list ...
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/chronos
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY services/ services/
# Packed into the wheel as shared/migrations_sql (see pyproject.toml, force-include).
COPY migrations/ migrations/
RUN /opt/chronos/bin/pip install '.[all]'

FROM python:3.12-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin chronos
COPY --from=build /opt/chronos /opt/chronos
ENV PATH=/opt/chronos/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=3000
USER chronos
WORKDIR /tmp
EXPOSE 3000 9191
CMD ["chronos", "--help"]
