FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY service ./service
COPY workers ./workers
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
CMD ["creditwatch", "run"]
