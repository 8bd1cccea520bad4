# puzzlefs-nbd: serve the PuzzleFS images in the /images volume over NBD.
#   docker build -t puzzlefs-nbd .
#   docker run -d -p 127.0.0.1:10809:10809 -v "$PWD/images:/images:ro" puzzlefs-nbd
# Every tag of the image directory is an export named after the tag.

FROM node:20-bookworm-slim AS build
# zstd-napi builds from source when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# npm ci runs `prepare`, which compiles src/ to dist/.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/contrib/docker-healthcheck.mjs ./contrib/
USER node
VOLUME /images
EXPOSE 10809
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["node", "contrib/docker-healthcheck.mjs", "10809"]
# Inside the container the server must listen on all interfaces to be reachable
# through the published port; publish it on 127.0.0.1 unless others need it.
ENTRYPOINT ["node", "bin/puzzlefs.js"]
CMD ["serve", "/images", "--listen", "0.0.0.0:10809"]
