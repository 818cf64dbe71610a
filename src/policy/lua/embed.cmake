# Writes redis_scripts.h: each lua/*.lua script as a raw string constant.
file(READ ${SRC}/reserve.lua RESERVE)
file(READ ${SRC}/settle.lua SETTLE)
file(WRITE ${OUT}.tmp "// Generated from src/policy/lua/*.lua by lua/embed.cmake.\n#pragma once\n"
     "inline constexpr const char* kReserveLua = R\"lua(${RESERVE})lua\";\n"
     "inline constexpr const char* kSettleLua = R\"lua(${SETTLE})lua\";\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
