# The worklist image: one image, one component per container (`worklist api|gateway|worker`).
# The embedded PostgreSQL/Redis extras are not installed: compose provides real services.

FROM python:3.11-slim AS build
WORKDIR /src
# README.md is optional for the build (only the package's long description).
COPY pyproject.toml README.md* ./
COPY worklist ./worklist
COPY dicom_gateway ./dicom_gateway
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WORKLIST_DATA_DIR=/data
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin worklist \
    && mkdir -p /data/dicom /data/tmp \
    && chown -R worklist:worklist /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels imaging-worklist \
    && rm -rf /wheels
USER worklist
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 11112 2575
CMD ["worklist", "api"]
