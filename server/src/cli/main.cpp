#include <cstdio>

int main() {
    std::puts("civicflow");
    return 0;
}
